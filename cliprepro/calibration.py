"""`cliprepro calibrate`: run a suite's proxy N times, write calibration records, set its gates.

Gate values come only from committed calibration records cited by id; `expected_from_records`
recomputes them, so a test can check expected/ against the records it cites.
"""
from __future__ import annotations

import math
import secrets
import statistics
from pathlib import Path

import yaml

from cliprepro import record as rec
from cliprepro.layout import Layout
from cliprepro.record import atomic_write_text
from cliprepro.claims import CalibratedEffect, ControlCalibration, SeedSpread, eval_se_of, pass_probability
from cliprepro.intervals import best_kept_fraction, pooled_sd
from cliprepro.spec import ExpectedFile
from cliprepro.verdict import Calibrated, attainability_problems, calibrate

HEADER = ("# Gate entries (kind calibrated_effect) are written by `cliprepro calibrate` from the\n"
          "# calibration records they cite (results/calibration/); findings are edited by hand.\n")


def runs_needed(run_s: float) -> int:
    """docs/design.md: >= 5 calibration runs where a run costs under a minute, else >= 3."""
    return 5 if run_s < 60 else 3


def expected_from_records(entry: CalibratedEffect, records: dict[str, rec.Record]) -> Calibrated:
    values, halfwidths, per_seed, eval_ses, ns = [], [], [], [], set()
    for rid in entry.calibration:
        metric = records[rid].metrics[entry.metric]
        assert metric.value is not None and metric.lo is not None and metric.hi is not None
        values.append(metric.value)
        halfwidths.append((metric.hi - metric.lo) / 2)
        ns.add(metric.n)
        if metric.over == "seeds":
            per_seed += metric.samples if len(metric.samples) == metric.n else [metric.value]
            eval_ses.append(eval_se_of(metric.measured()))
    return calibrate(values, halfwidths, n=min(ns), per_seed=per_seed or None, eval_ses=eval_ses or None)


def calibrated_fields(cal: Calibrated, ids: list[str]) -> dict:
    """The fields of a calibrated_effect entry that its calibration records determine."""
    spread = None
    if cal.seed_sd is not None and cal.seed_sd > 0:
        spread = SeedSpread(sd=cal.seed_sd, df=cal.seed_df,
                            source=f"per-seed values of calibration records {', '.join(ids)}")
    return {"value": cal.value, "calibration": ids, "calibration_spread": cal.spread,
            "planned_halfwidth": cal.halfwidth, "planned_n": cal.n, "seed_spread": spread,
            "eval_se": cal.eval_se}


def control_from_record(record: rec.Record, rid: str, metric: str) -> ControlCalibration | None:
    """The negative control's value as its calibration run measured it (None: one seed, whose
    spread it cannot show)."""
    m = record.metrics.get(metric)
    if m is None or m.value is None:
        return None
    if m.over == "seeds":
        if m.n < 2 or len(m.samples) != m.n:
            return None
        return ControlCalibration(record=rid, value=round(m.value, 4), seed_sd=round(statistics.stdev(m.samples), 4),
                                  eval_se=round(m.eval_se or 0.0, 4))
    return ControlCalibration(record=rid, value=round(m.value, 4))


def ci_seed_count(suite) -> int | None:
    """Seeds a CI run of the suite trains (None: its CI scale is not the proxy or has no seeds)."""
    seeds = suite.params_for("proxy").get("seeds") if suite.ci_scale == "proxy" else None
    return len(seeds) if seeds else None


def derive(entry: CalibratedEffect, ids: list[str], control_id: str | None,
           records: dict[str, rec.Record], ci_seeds: int | None = None) -> dict:
    """Every field calibration sets: the calibrated ones, the control's model, and the kept
    fraction (threshold) that maximises the smaller of P(pass) and P(control fails). A gate over
    seeds is planned for the `ci_seeds` a CI run trains (its calibration runs train more, to
    measure the one-seed spread), so its threshold and probabilities are those of a CI run."""
    fields = calibrated_fields(expected_from_records(entry.model_copy(update={"calibration": ids}), records), ids)
    if ci_seeds and fields["seed_spread"] is not None:
        n_cal, fields["planned_n"] = fields["planned_n"], ci_seeds
        if fields["eval_se"] is not None and ci_seeds < n_cal:
            fields["eval_se"] = eval_se_for(fields["eval_se"], n_cal, ci_seeds)
    fields["control_calibration"] = (control_from_record(records[control_id], control_id, entry.metric)
                                     if control_id else None)
    provisional = entry.model_copy(update=fields)
    if pass_probability(provisional) is not None:  # a finding, or no spread: the kept fraction stays
        fields["kept_fraction"], _p = best_kept_fraction(lambda k: pass_probability(provisional, k))
    return fields


def eval_se_for(eval_se: float, n_cal: int, n: int) -> float:
    """The evaluation s.e. of a mean over `n` seeds, from the calibration's over its `n_cal`: the
    seeds are scored on one evaluation set, so their errors are correlated (rho >= 0) and
    se(n) = se(1) * sqrt((1 + (n - 1) rho) / n). Fewer seeds average away less of it; by at most
    sqrt(n_cal / n), reached at rho = 0. That bound is the model's (as the spread's upper bound):
    a one-seed CI run's interval is planned no narrower than it can be."""
    return round(eval_se * math.sqrt(n_cal / n), 4)


SEED_BASE_MIN = 1_000_000  # calibration seeds start here; check runs use the suites' small seeds


def draw_seed_base() -> int:
    """A fresh seed range per calibration: no model shares a seed with a check run or another
    calibration (ranges of 1000 seeds; two calibrations collide with probability 1e-6)."""
    return SEED_BASE_MIN + 1000 * secrets.randbelow(10 ** 6)


def _without_seeds(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "seeds"}


def record_problems(record: rec.Record, params_now: dict, training_path: str | None) -> list[str]:
    """Why a cited calibration record cannot stand behind a gate (empty: it can): it must be a
    completed calibration run, from a clean tree at a known commit, trained fresh (own cache,
    every stage trained, none reused), with today's proxy params (seeds aside) and, for a
    training suite, today's training-path fingerprint (runners.training.fingerprint)."""
    out = []
    if record.record_type != "calibration":
        out.append(f"is a {record.record_type} record, not a calibration run")
    if record.status != "completed":
        out.append(f"did not complete (status {record.status})")
    git = record.provenance.get("git", {})
    if not git.get("commit") or git.get("dirty") is not False:
        out.append(f"came from a tree that is not known clean (commit {git.get('commit')}, dirty {git.get('dirty')})")
    cal = record.provenance.get("calibration", {})
    if not cal.get("fresh_cache"):
        out.append("did not train in a fresh stage cache")
    # train runner points of trained stages (trained None: epochs 0); a soup's point is made from them
    stages = [p for p in record.points if "stage" in p and "soup_of" not in p]
    if any("trained" not in p for p in stages):
        out.append("does not say whether its stages were trained fresh")
    reused = [f"{p['stage']}/seed{p['seed']}" for p in stages if p.get("trained") is False]
    if reused and not record.negative_control:  # a control is evaluated on its calibration's models
        out.append(f"reused trained stages {', '.join(reused)}")
    if _without_seeds(record.config.get("params", {})) != _without_seeds(params_now):
        out.append("was made with other proxy params than the suite has now")
    if training_path is not None and record.inputs.get("training_path") != training_path:
        out.append(f"was trained on training path {record.inputs.get('training_path')}, not today's {training_path}")
    return out


def load_calibration(layout: Layout) -> dict[str, rec.Record]:
    return dict(rec.read(p) for p in rec.find(layout.calibration))


def write_expected(path: Path, exp: ExpectedFile) -> None:
    data = exp.model_dump(mode="json", exclude_defaults=True)
    atomic_write_text(path, HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))


def apply(layout: Layout, name: str, ids: list[str],
          control_ids: dict[str, str] | None = None) -> tuple[ExpectedFile, list[str]]:
    """Set every calibrated_effect entry of the suite from the calibration records `ids` and its
    negative control's calibration record (`control_ids`: control name -> record id)."""
    suite, exp = layout.load(name)
    records = load_calibration(layout)
    problems: list[str] = []
    entries = []
    for entry in exp.entries:
        if entry.kind != "calibrated_effect":
            entries.append(entry)
            continue
        control_id = (control_ids or {}).get(entry.negative_control or "")
        fields = derive(entry, ids, control_id, records, ci_seed_count(suite))
        new = CalibratedEffect.model_validate({**entry.model_dump(), **fields})
        problems += [f"{new.claim}: {p}" for p in attainability_problems(new)]
        entries.append(new)
    new_exp = ExpectedFile(suite=exp.suite, entries=entries)
    write_expected(layout.expected / f"{name}.yaml", new_exp)
    return new_exp, problems


def reapply(layout: Layout, name: str) -> tuple[ExpectedFile, list[str]]:
    """Every calibrated_effect entry of the suite recomputed from the records it already cites."""
    _suite, exp = layout.load(name)
    ids = next((e.calibration for e in exp.entries if e.kind == "calibrated_effect" and e.calibration), [])
    controls = {e.negative_control: e.control_calibration.record for e in exp.entries
                if e.kind == "calibrated_effect" and e.control_calibration and e.negative_control}
    return apply(layout, name, ids, controls)


def metric_seed_spread(records: list[rec.Record], metric: str) -> tuple[float | None, int]:
    """The one-seed SD of `metric`, pooled within a suite's own calibration runs (each run's
    per-seed values about that run's mean; df = the sum of seeds - 1). A finding of a suite whose
    CI run trains fewer seeds than its calibration runs borrows it (expected/, seed_spread.source),
    so its interval stays finite at one seed."""
    groups = [list(r.metrics[metric].samples) for r in records
              if metric in r.metrics and r.metrics[metric].n == len(r.metrics[metric].samples) >= 2]
    return pooled_sd(groups)


def contrast_spread(records: list[rec.Record]) -> tuple[float | None, int, list[str]]:
    """The one-seed SD of a suite's paired contrasts (metrics `gain_*` measured on one seed), pooled
    over independent calibration runs: each run draws its own seeds, so a contrast's run-to-run
    spread is its seed-to-seed spread. (sd, degrees of freedom, the contrasts used). Findings of
    suites too costly to calibrate themselves borrow it (expected/, seed_spread.source)."""
    names = sorted({m for r in records for m, v in r.metrics.items()
                    if m.startswith("gain_") and v.n == 1 and v.value is not None})
    groups = [[r.metrics[m].value for r in records if m in r.metrics] for m in names]
    sd, df = pooled_sd(groups)
    return sd, df, names
