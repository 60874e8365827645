"""Re-judging and pooling records for reports (pure: data in, data out).

Every record is re-judged with the expected entry it stores; a record whose stored verdicts or
values disagree with that, that fails validation, or that reuses a calibration record as a check,
is rejected with the reason. A record of an older schema is re-judged by today's rules and shown
with the new verdict (saying what it stored). Over seeds, records that trained the same models
(same params, seeds included, data and training path) count once. A record judged against an
entry that differs from the current one in expected/ is `stale`: shown, but not pooled into the
leaderboard. A record whose run did not complete (crash, runtime overrun) never contributes; it is
listed with its reason.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from cliprepro.pooling import pool_metrics
from cliprepro.record import SCHEMA_VERSION, ClaimResult, Record
from cliprepro.spec import ExpectedEntry, ExpectedFile
from cliprepro.verdict import judge, judged_interval


@dataclass(frozen=True)
class Row:
    """One claim result of one accepted record."""
    rid: str
    record: Record
    result: ClaimResult
    stale: bool

    @property
    def device_class(self) -> str:
        return str(self.record.provenance.get("device", {}).get("device_class", "unknown"))


@dataclass(frozen=True, order=True)
class Rejected:
    suite: str
    record: str  # id, or the file name of a record that could not be read
    reason: str


def suite_of_file(name: str) -> str:
    """A record file is named <suite>__<scale>__<type>__<id>.json."""
    return name.split("__", 1)[0] if "__" in name else "(unknown suite)"


@dataclass
class Ledger:
    rows: list[Row] = field(default_factory=list)
    controls: list[Row] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    incomplete: list[Rejected] = field(default_factory=list)  # status error / skipped, with the reason


def _started(record: Record) -> str:
    return str(record.provenance.get("started_utc", ""))


def rejudge(record: Record) -> tuple[str | None, list[ClaimResult]]:
    """(why this record disagrees with its own stored expected entries, or None; its results as
    today's rules judge them). Schema 1 records may change verdict: never a disagreement."""
    entries = {e.key(): e for e in record.expected}
    out = []
    for r in record.results:
        entry = entries.get((r.claim, r.scale))
        if entry is None:
            return f"result {r.claim}@{r.scale} has no stored expected entry", []
        if r.verdict in ("error", "skipped"):
            out.append(r)
            continue  # no value to re-judge; these never count as reproduced
        metric = record.metrics.get(entry.metric)
        if metric is None or metric.value != r.value:
            return f"{r.claim}: stored value {r.value} is not the recorded metric {entry.metric!r}", []
        verdict, reason = judge(entry, metric.measured())
        if verdict != r.verdict and record.schema_version == SCHEMA_VERSION:
            return f"{r.claim}: stored verdict {r.verdict!r}, re-judged {verdict!r}", []
        if verdict != r.verdict:
            lo, hi = judged_interval(entry, metric.measured())
            r = r.model_copy(update={"verdict": verdict, "lo": lo, "hi": hi, "reason": (
                f"{reason} (re-judged by today's rules; schema {record.schema_version} record said {r.verdict})")})
        out.append(r)
    return None, out


def build_ledger(records: list[tuple[str, Record]], invalid: list[tuple[str, str]],
                 expected: dict[str, ExpectedFile], check=None) -> Ledger:
    """`check(record)`: why a run or control record cannot count (cliprepro.check), if given."""
    ledger = Ledger(rejected=[Rejected(suite_of_file(name), name, why) for name, why in invalid])
    current: dict[tuple[str, str, str], ExpectedEntry] = {
        (suite, *e.key()): e for suite, f in expected.items() for e in f.entries}
    cited = {rid for f in expected.values() for e in f.entries for rid in getattr(e, "calibration", [])}
    for rid, record in sorted(records, key=lambda x: (_started(x[1]), x[0])):
        if rid in cited and record.record_type != "calibration":
            ledger.rejected.append(Rejected(record.suite, rid, "a calibration record cited by expected/ is "
                                            "reused as a check"))
            continue
        reason, results = rejudge(record)
        if reason:
            ledger.rejected.append(Rejected(record.suite, rid, f"re-judging disagrees: {reason}"))
            continue
        if record.record_type == "calibration":
            continue  # shown by the metrics expected/ cites, never as verdicts
        problems = check(record) if check is not None else []
        if problems:
            ledger.rejected.append(Rejected(record.suite, rid, "; ".join(problems)))
            continue
        if record.status != "completed":
            first = record.message.splitlines()[0] if record.message else "no reason recorded"
            ledger.incomplete.append(Rejected(record.suite, rid, f"{record.status}: {first}"))
            continue
        target = ledger.rows if record.record_type == "run" else ledger.controls
        for r in results:
            stored = next(e for e in record.expected if e.key() == (r.claim, r.scale))
            now = current.get((record.suite, r.claim, r.scale))
            target.append(Row(rid, record, r, stale=now != stored))
    ledger.rejected.sort()
    ledger.incomplete.sort()
    return ledger


@dataclass(frozen=True)
class Pool:
    """One claim at one scale on one device class: its records' measurements pooled and judged."""
    suite: str
    claim: str
    scale: str
    device_class: str
    role: str
    records: int  # distinct records (a resubmitted record has the same id: counted once)
    value: float | None
    lo: float | None  # the interval the verdict used
    hi: float | None
    n: int  # seeds or rounds in the pool
    verdict: str
    reason: str
    latest: str  # id of the newest record


def _same_models(record: Record) -> str:
    """What fixes the models a training record evaluated: its params (seeds included), data and
    training path. Two records equal in it measured the same seeds of the same recipe."""
    return json.dumps([record.config.get("params"), record.inputs.get("data"), record.inputs.get("training_path")],
                      sort_keys=True, default=str)


def _one_per_seed_set(members: dict[str, Row]) -> dict[str, Row]:
    """Over seeds, records that trained the very same models (a CI build beside the committed
    record of the same seeds: on a CPU, the same numbers) are one measurement, not several; the
    newest stands for them. Other seeds, data or recipes all pool."""
    newest: dict[str, str] = {}
    for rid, row in sorted(members.items(), key=lambda kv: (_started(kv[1].record), kv[0])):
        newest[_same_models(row.record)] = rid
    return {rid: members[rid] for rid in sorted(newest.values())}


def pool(rows: list[Row], expected: dict[str, ExpectedFile]) -> list[Pool]:
    """One pool per (suite, claim, scale, device class) over the current rows: the measurements
    pooled (cliprepro.pooling), then judged by today's entry, never a vote of stored verdicts."""
    current = {(suite, *e.key()): e for suite, f in expected.items() for e in f.entries}
    groups: dict[tuple[str, str, str, str], dict[str, Row]] = defaultdict(dict)
    for row in rows:
        if not row.stale:
            groups[(row.record.suite, row.result.claim, row.result.scale, row.device_class)][row.rid] = row
    pools = []
    for (suite, claim, scale, device), members in sorted(groups.items()):
        entry = current[(suite, claim, scale)]
        newest = max(members.values(), key=lambda r: (_started(r.record), r.rid))
        measured = {rid: r for rid, r in members.items()
                    if r.result.verdict not in ("skipped", "error") and entry.metric in r.record.metrics}
        unmeasured = {rid: r.result.verdict for rid, r in members.items() if rid not in measured}
        if all(r.record.metrics[entry.metric].over == "seeds" for r in measured.values()):
            measured = _one_per_seed_set(measured)
        metrics = {rid: r.record.metrics[entry.metric] for rid, r in measured.items()}
        pooled = pool_metrics(metrics)
        value = lo = hi = None
        n = 0
        if pooled.metric is not None:
            m = pooled.metric.measured()
            verdict, reason = judge(entry, m)
            reason += f" ({pooled.why})" if pooled.why else ""
            if unmeasured:  # said, never dropped in silence: most of all when the newest run measured nothing
                reason += (f" ({len(unmeasured)} of {len(members)} record(s) measured nothing, not pooled: "
                           f"{', '.join(sorted(set(unmeasured.values())))}"
                           + (f"; the newest, {newest.rid}, is {newest.result.verdict}: {newest.result.reason}"
                              if newest.rid in unmeasured else "") + ")")
            value, n = m.value, m.n
            lo, hi = judged_interval(entry, m)
        elif not metrics:  # nothing measured: the newest record says why (skipped, error)
            verdict, reason = newest.result.verdict, newest.result.reason
        else:
            verdict, reason = "inconclusive", pooled.why
        pools.append(Pool(suite, claim, scale, device, entry.role, len(members), value, lo, hi, n,
                          verdict, reason, newest.rid))
    return pools
