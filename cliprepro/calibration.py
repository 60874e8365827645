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
from cliprepro.spec import ExpectedEntry, ExpectedFile
from cliprepro.verdict import Calibrated, attainability_problems, calibrate

HEADER = ("# Gate entries (kind calibrated_effect) are written by `cliprepro calibrate` from the\n"
          "# calibration records they cite (results/calibration/); findings are edited by hand.\n")


def runs_needed(run_s: float) -> int:
    """DESIGN.md: >= 5 calibration runs where a run costs under a minute, else >= 3."""
    return 5 if run_s < 60 else 3


def expected_from_records(entry: ExpectedEntry, records: dict[str, rec.Record]) -> Calibrated:
    values, halfwidths = [], []
    for rid in entry.calibration:
        metric = records[rid].metrics[entry.metric]
        assert metric.value is not None and metric.lo is not None and metric.hi is not None
        values.append(metric.value)
        halfwidths.append((metric.hi - metric.lo) / 2)
    return calibrate(values, halfwidths)


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
        cited = entry.model_copy(update={"calibration": ids, "value": 0.0})
        cal = expected_from_records(cited, records)
        new = ExpectedEntry.model_validate({**entry.model_dump(), "value": cal.value, "calibration": ids,
                                            "calibration_spread": cal.spread,
                                            "planned_halfwidth": cal.halfwidth})
        problems += [f"{new.claim}: {p}" for p in attainability_problems(new)]
        entries.append(new)
    new_exp = ExpectedFile(suite=exp.suite, entries=entries)
    write_expected(layout.expected / f"{name}.yaml", new_exp)
    return new_exp, problems
