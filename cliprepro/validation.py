"""`cliprepro validate`: every suite and expected file, and how they refer to each other."""
from __future__ import annotations

from pydantic import ValidationError

from cliprepro.calibration import expected_from_records, load_calibration
from cliprepro.errors import InputError
from cliprepro.layout import Layout
from cliprepro.spec import describe_validation_error
from cliprepro.verdict import attainability_problems
from runners.params import params_schema


def validate_all(layout: Layout) -> list[str]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    try:
        calibration = load_calibration(layout)
    except InputError as exc:
        return [str(exc)]
    stray = sorted(p.name for p in layout.expected.glob("*.yaml") if p.stem not in layout.suite_names())
    problems += [f"{layout.expected / s}: (file): no suite of that name in suites/" for s in stray]
    for name in layout.suite_names():
        try:
            suite, exp = layout.load(name)
        except InputError as exc:
            problems.append(str(exc))
            continue
        spath, epath = layout.suites / f"{name}.yaml", layout.expected / f"{name}.yaml"
        for scale, plan in suite.scales.items():
            schema = params_schema(suite.runner, scale)
            variants = [("", plan.params)] + [(f" with negative control {c}", {**plan.params, **nc.overrides})
                                              for c, nc in suite.negative_controls.items()
                                              if scale == suite.ci_scale]  # controls run at CI scale
            for label, data in variants:
                try:
                    schema.model_validate(data)
                except ValidationError as exc:
                    err = describe_validation_error(spath, exc, schema)
                    problems.append(f"{spath}: scales.{scale}.params.{err.field}{label}: {err.problem}")
        gates = {e.claim for e in exp.entries if e.role == "gate"}
        for cname, control in suite.negative_controls.items():
            for g in control.gates:
                if g not in gates:
                    problems.append(f"{spath}: negative_controls.{cname}.gates: {g!r} is not a gate in {epath}")
        for i, e in enumerate(exp.entries):
            where = f"{epath}: entries.{i} ({e.claim}@{e.scale})"
            if owner.setdefault(e.claim, name) != name:
                problems.append(f"{where}: claim id also belongs to suite {owner[e.claim]!r}; "
                                "every claim id belongs to exactly one suite")
            if e.scale not in suite.scales:
                problems.append(f"{where}: scale: the suite plans only {sorted(suite.scales)}")
            if e.negative_control and (e.negative_control not in suite.negative_controls
                                       or e.claim not in suite.gates_of(e.negative_control)):
                problems.append(f"{where}: negative_control: {e.negative_control!r} must be defined in "
                                f"{spath} negative_controls and list this gate")
            problems += [f"{where}: {p}" for p in attainability_problems(e)]
            missing = [rid for rid in e.calibration if rid not in calibration]
            if missing:
                problems.append(f"{where}: calibration: no calibration record {missing} in {layout.calibration}")
            elif e.calibration:
                bad = [rid for rid in e.calibration if calibration[rid].suite != name
                       or e.metric not in calibration[rid].metrics]
                if bad:
                    problems.append(f"{where}: calibration: records {bad} are not {name} runs measuring {e.metric}")
                    continue
                cal = expected_from_records(e, calibration)
                if (cal.value, cal.spread, cal.halfwidth) != (e.value, e.calibration_spread, e.planned_halfwidth):
                    problems.append(f"{where}: value/calibration_spread/planned_halfwidth differ from what "
                                    f"its calibration records give ({cal}); rerun cliprepro calibrate")
    return problems
