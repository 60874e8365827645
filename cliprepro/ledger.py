"""Re-judging and pooling records for reports (pure: data in, data out).

Every record is re-judged with the expected entry it stores; a record whose stored verdicts or
values disagree with that, that fails validation, or that reuses a calibration record as a check,
is rejected with the reason. A record judged against an entry that differs from the current one
in expected/ is `stale`: shown, but not pooled into the leaderboard.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from cliprepro.record import ClaimResult, Record
from cliprepro.spec import ExpectedEntry, ExpectedFile
from cliprepro.verdict import Measured, judge


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


@dataclass
class Ledger:
    rows: list[Row] = field(default_factory=list)
    controls: list[Row] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (record name, reason)


def _started(record: Record) -> str:
    return str(record.provenance.get("started_utc", ""))


def rejudge(record: Record) -> str | None:
    """Why this record disagrees with its own stored expected entries (None when it agrees)."""
    entries = {e.key(): e for e in record.expected}
    for r in record.results:
        entry = entries.get((r.claim, r.scale))
        if entry is None:
            return f"result {r.claim}@{r.scale} has no stored expected entry"
        if r.verdict in ("error", "skipped"):
            continue  # no value to re-judge; these never count as reproduced
        metric = record.metrics.get(entry.metric)
        if metric is None or metric.value != r.value:
            return f"{r.claim}: stored value {r.value} is not the recorded metric {entry.metric!r}"
        verdict, _ = judge(entry, Measured(metric.value, metric.lo, metric.hi, metric.n))
        if verdict != r.verdict:
            return f"{r.claim}: stored verdict {r.verdict!r}, re-judged {verdict!r}"
    return None


def build_ledger(records: list[tuple[str, Record]], invalid: list[tuple[str, str]],
                 expected: dict[str, ExpectedFile]) -> Ledger:
    ledger = Ledger(rejected=list(invalid))
    current: dict[tuple[str, str, str], ExpectedEntry] = {
        (suite, *e.key()): e for suite, f in expected.items() for e in f.entries}
    cited = {rid for f in expected.values() for e in f.entries for rid in e.calibration}
    for rid, record in sorted(records, key=lambda x: (_started(x[1]), x[0])):
        if rid in cited and record.record_type != "calibration":
            ledger.rejected.append((rid, "a calibration record cited by expected/ is reused as a check"))
            continue
        reason = rejudge(record)
        if reason:
            ledger.rejected.append((rid, f"re-judging disagrees: {reason}"))
            continue
        if record.record_type == "calibration":
            continue  # shown by the metrics expected/ cites, never as verdicts
        target = ledger.rows if record.record_type == "run" else ledger.controls
        for r in record.results:
            stored = next(e for e in record.expected if e.key() == (r.claim, r.scale))
            now = current.get((record.suite, r.claim, r.scale))
            target.append(Row(rid, record, r, stale=now != stored))
    ledger.rejected.sort()
    return ledger


@dataclass(frozen=True)
class Pool:
    suite: str
    claim: str
    scale: str
    device_class: str
    role: str
    count: int
    verdicts: dict[str, int]
    median: float | None
    lo: float | None
    hi: float | None
    latest: str


def pool(rows: list[Row]) -> list[Pool]:
    """One pool per (suite, claim, scale, device class) over all current, accepted records."""
    groups: dict[tuple[str, str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if not row.stale:
            groups[(row.record.suite, row.result.claim, row.result.scale, row.device_class)].append(row)
    pools = []
    for (suite, claim, scale, device), members in sorted(groups.items()):
        verdicts: dict[str, int] = defaultdict(int)
        for m in members:
            verdicts[m.result.verdict] += 1
        values = [m.result.value for m in members if m.result.value is not None]
        pools.append(Pool(suite, claim, scale, device, members[-1].result.role, len(members),
                          dict(sorted(verdicts.items())),
                          statistics.median(values) if values else None,
                          min(values) if values else None, max(values) if values else None,
                          members[-1].result.verdict))
    return pools
