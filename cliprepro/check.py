"""What a record must satisfy before it counts: `cliprepro check RECORD...` runs it before a pull
request, `cliprepro report` runs it on every record and lists the ones it rejects, with why.

Beyond reading (schema, content hash = file name) and re-judging (stored verdicts agree with the
stored entries, cliprepro.ledger.rejudge), a record must be: of a known suite at its current
version, judged against today's expected entries (else it is stale: shown, never pooled), complete
(status), reproducible (a clean tree at a known commit, a package freeze, a device class), made on
the inputs its suite declares (the proxy data's fingerprint, the training path's fingerprint), and
its per-example predictions must be present, match their hash and give the accuracies it reports.
"""
from __future__ import annotations

import math
from typing import Any

from cliprepro.record import Record
from cliprepro.spec import ExpectedFile, Suite

ACC_TOLERANCE_PCT = 1e-6  # accuracies are stored unrounded (as floats) next to their predictions


def provenance_problems(record: Record) -> list[str]:
    p = record.provenance
    git, packages, device = p.get("git") or {}, p.get("packages") or {}, p.get("device") or {}
    out = []
    if not git.get("commit"):
        out.append("provenance.git.commit is unknown: run from a git checkout (or set $CLIPREPRO_COMMIT)")
    if git.get("dirty") is not False:
        out.append("provenance.git.dirty is not false: the code that ran is not a commit; commit, then re-run")
    if not (packages.get("installed_sha256") and packages.get("versions")):
        out.append("provenance.packages has no full freeze (installed_sha256, versions)")
    if not device.get("device_class"):
        out.append("provenance.device.device_class is missing: the leaderboard keys on it")
    if not p.get("started_utc"):
        out.append("provenance.started_utc is missing")
    return out


def _train_inputs(record: Record) -> list[str]:
    from runners.schema.train_params import TrainParams
    from runners.training import fingerprint
    from runners.training.proxydata import DataSpec

    from pydantic import ValidationError

    from cliprepro.calibration import SEED_BASE_MIN

    out = []
    params = record.config.get("params")
    seeds = params.get("seeds") if isinstance(params, dict) else None
    if record.record_type != "calibration" and isinstance(seeds, list) and any(
            isinstance(x, int) and x >= SEED_BASE_MIN for x in seeds):
        # a check must never train the models a threshold was fitted to (docs/verdicts.md)
        out.append(f"config.params.seeds {seeds} are calibration seeds (>= {SEED_BASE_MIN}): "
                   "a check trains its own models")
    if record.scale == "proxy" and isinstance(params, dict):
        try:
            data = TrainParams(**params).data
            if isinstance(data, str):
                return [f"config.params.data is {data!r}: a proxy record trains on the procedural data"]
            spec = DataSpec(**data.model_dump())
        except ValidationError as exc:  # made by an older runner: say so, never crash the report
            first = exc.errors()[0]
            return [f"config.params no longer validate ({'.'.join(map(str, first['loc']))}: {first['msg']}): "
                    "made by an older version of the train runner; re-run it"]
        if record.inputs.get("data") != spec.label():
            out.append(f"inputs.data is {record.inputs.get('data')!r}, not the suite's proxy data {spec.fingerprint()}")
        if record.inputs.get("training_path") != fingerprint.COMMITTED:
            out.append(f"inputs.training_path is {record.inputs.get('training_path')!r}, not this code's "
                       f"{fingerprint.COMMITTED}: trained by another training path")
    return out


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def prediction_problems(record: Record) -> list[str]:
    """Each (stage, seed) point's predictions: present, matching their hash, giving its acc1_mean;
    each stage's mean-accuracy metric: the mean of those per-seed accuracies."""
    from cliprepro import predictions
    from runners.schema.metric_names import stage_accuracy

    out, per_stage = [], {}
    for point in record.points:
        if "stage" not in point or "acc1_mean" not in point:
            continue
        where = f"points[stage={point['stage']}, seed={point.get('seed')}]"
        packed: Any = point.get("predictions")
        if not isinstance(packed, dict) or "zlib_b64" not in packed:
            out.append(f"{where}.predictions missing: per-example outcomes are required")
            continue
        try:
            correct = predictions.unpack(packed)
        except predictions.Malformed as exc:
            out.append(f"{where}.predictions: {exc}")
            continue
        if predictions.digest(correct) != packed.get("sha256"):
            out.append(f"{where}.predictions do not match their sha256")
            continue
        if not _number(point["acc1_mean"]) or not isinstance(point["stage"], str):
            out.append(f"{where}: acc1_mean must be a number and stage a name")
            continue
        acc = 100 * float(correct.mean())
        if not math.isclose(acc, point["acc1_mean"], abs_tol=ACC_TOLERANCE_PCT):
            out.append(f"{where}.acc1_mean is {point['acc1_mean']}, its predictions give {acc:.6g}")
        per_stage.setdefault(point["stage"], []).append(acc)
    for stage, accs in sorted(per_stage.items()):
        name = stage_accuracy(stage, "mean")
        m = record.metrics.get(name)
        if m is not None and m.value is not None and not math.isclose(m.value, sum(accs) / len(accs), abs_tol=1e-4):
            out.append(f"metrics.{name} is {m.value}, its points' predictions give {sum(accs) / len(accs):.6g}")
    return out


def record_problems(record: Record, suites: dict[str, Suite], expected: dict[str, ExpectedFile],
                    stale_ok: bool = False) -> list[str]:
    """Why `record` cannot count (empty: it can). Calibration records are checked by `validate`.
    stale_ok: an entry changed since is no problem (the report shows such records, unpooled)."""
    from cliprepro.ledger import rejudge

    suite = suites.get(record.suite)
    if suite is None:
        return [f"suite {record.suite!r} is not in suites/"]
    out = []
    if record.suite_version != suite.version:
        out.append(f"suite_version {record.suite_version}: suites/{suite.suite}.yaml is at version {suite.version}")
    current = {e.key(): e for e in expected[record.suite].entries}
    for e in record.expected:
        if e.key() not in current:
            out.append(f"claim {e.claim}@{e.scale} is no longer in expected/{record.suite}.yaml")
        elif current[e.key()] != e and not stale_ok:
            out.append(f"claim {e.claim}@{e.scale} was judged against an older expected entry (stale)")
    if record.status != "completed":
        out.append(f"status {record.status}: {record.message.splitlines()[0] if record.message else 'no reason'}")
    reason, _ = rejudge(record)
    if reason:
        out.append(f"re-judging disagrees: {reason}")
    out += provenance_problems(record)
    if record.scale in suite.scales and suite.runner_at(record.scale) == "train":
        out += _train_inputs(record)
        out += prediction_problems(record)
    return out
