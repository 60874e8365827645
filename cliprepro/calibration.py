"""`cliprepro calibrate`: run a suite's proxy N times, write calibration records, set its gates.

Gate values come only from committed calibration records cited by id; `expected_from_records`
recomputes them, so a test can check expected/ against the records it cites.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from cliprepro import record as rec
from cliprepro.layout import Layout
from cliprepro.record import atomic_write_text
from cliprepro.claims import CalibratedEffect, SeedSpread, eval_se_of
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


def load_calibration(layout: Layout) -> dict[str, rec.Record]:
    return dict(rec.read(p) for p in rec.find(layout.calibration))


def write_expected(path: Path, exp: ExpectedFile) -> None:
    data = exp.model_dump(mode="json", exclude_defaults=True)
    atomic_write_text(path, HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))


def apply(layout: Layout, name: str, ids: list[str]) -> tuple[ExpectedFile, list[str]]:
    """Set every calibrated_effect entry of the suite from the calibration records `ids`."""
    _suite, exp = layout.load(name)
    records = load_calibration(layout)
    problems: list[str] = []
    entries = []
    for entry in exp.entries:
        if entry.kind != "calibrated_effect":
            entries.append(entry)
            continue
        cal = expected_from_records(entry.model_copy(update={"calibration": ids}), records)
        new = CalibratedEffect.model_validate({**entry.model_dump(), **calibrated_fields(cal, ids)})
        problems += [f"{new.claim}: {p}" for p in attainability_problems(new)]
        entries.append(new)
    new_exp = ExpectedFile(suite=exp.suite, entries=entries)
    write_expected(layout.expected / f"{name}.yaml", new_exp)
    return new_exp, problems
