"""`cliprepro validate`: every suite and expected file, and how they refer to each other."""
from __future__ import annotations

import difflib

from pydantic import ValidationError

from cliprepro.calibration import ci_seed_count, derive, load_calibration, record_problems
from cliprepro.claims import CalibratedEffect, pass_probability
from cliprepro.intervals import run_pass_probability
from cliprepro.errors import InputError
from cliprepro.layout import Layout
from cliprepro.spec import describe_validation_error
from cliprepro.verdict import attainability_problems
from runners import declared_metrics, params_schema


def training_path() -> str:
    from runners.training.fingerprint import COMMITTED

    return COMMITTED


def validate_all(layout: Layout) -> list[str]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    try:
        calibration = load_calibration(layout)
    except InputError as exc:
        return [str(exc)]
    try:  # the user config too: a configured path that does not exist is bad input
        from cliprepro.userconfig import load

        load(layout.root)
    except InputError as exc:
        problems.append(str(exc))
    stray = sorted(p.name for p in layout.expected.glob("*.yaml") if p.stem not in layout.suite_names())
    problems += [f"{layout.expected / s}: (file): no suite of that name in suites/" for s in stray]
    for name in layout.suite_names():
        try:
            suite, exp = layout.load(name)
        except InputError as exc:
            problems.append(str(exc))
            continue
        spath, epath = layout.suites / f"{name}.yaml", layout.expected / f"{name}.yaml"
        produced: dict[str, set[str]] = {}  # scale -> metrics its params will write
        for scale in suite.scales:
            schema = params_schema(suite.runner_at(scale), scale)
            variants = [(None, "")] + [(c, f" with negative control {c}") for c in suite.negative_controls
                                       if scale == suite.ci_scale]  # controls run at CI scale
            for control, label in variants:
                try:
                    params = schema.model_validate(suite.params_for(scale, control))
                except ValidationError as exc:
                    err = describe_validation_error(spath, exc, schema)
                    problems.append(f"{spath}: scales.{scale}.params.{err.field}{label}: {err.problem}")
                    continue
                if control is None:
                    produced[scale] = declared_metrics(params)
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
            elif e.scale in produced and e.metric not in produced[e.scale]:
                close = difflib.get_close_matches(e.metric, sorted(produced[e.scale]), n=3, cutoff=0.6)
                problems.append(f"{where}: metric: {e.metric!r} is not a metric the {e.scale} params of {spath} "
                                f"produce{'; did you mean ' + ', '.join(close) + '?' if close else ''}")
            if e.negative_control and (e.negative_control not in suite.negative_controls
                                       or e.claim not in suite.gates_of(e.negative_control)):
                problems.append(f"{where}: negative_control: {e.negative_control!r} must be defined in "
                                f"{spath} negative_controls and list this gate")
            problems += [f"{where}: {p}" for p in attainability_problems(e)]
            cited = getattr(e, "calibration", [])
            missing = [rid for rid in cited if rid not in calibration]
            if missing:
                problems.append(f"{where}: calibration: no calibration record {missing} in {layout.calibration}")
            elif cited:
                bad = [rid for rid in cited if calibration[rid].suite != name
                       or e.metric not in calibration[rid].metrics]
                if bad:
                    problems.append(f"{where}: calibration: records {bad} are not {name} runs measuring {e.metric}")
                    continue
                assert isinstance(e, CalibratedEffect)
                control = e.control_calibration.record if e.control_calibration else None
                if control is not None and control not in calibration:
                    problems.append(f"{where}: control_calibration: no calibration record {control}")
                    continue
                path = training_path() if suite.runner_at("proxy") == "train" else None
                for rid in [*cited, *([control] if control else [])]:
                    r = calibration[rid]
                    try:
                        now = params_schema(suite.runner_at("proxy"), "proxy").model_validate(
                            suite.params_for("proxy", r.negative_control)).model_dump(mode="json")
                    except (ValidationError, KeyError):
                        continue  # the suite's params are reported above
                    problems += [f"{where}: calibration record {rid} {p}; rerun cliprepro calibrate {name}"
                                 for p in record_problems(r, now, path)]
                want = derive(e, e.calibration, control, calibration, ci_seed_count(suite))
                differ = sorted(k for k, v in want.items() if getattr(e, k) != v)
                if differ:
                    problems.append(f"{where}: {', '.join(differ)} differ from what its calibration records "
                                    f"give ({', '.join(f'{k}={want[k]}' for k in differ)}); rerun cliprepro calibrate")
    return problems


def gate_probabilities(layout: Layout) -> tuple[list[list], float, list[list]]:
    """Per gate: P(an honest rerun passes), P(its negative control fails), how; P(a CI run
    passes every gate), the product over gates (a lower bound: gates of one run are correlated);
    and the ledger per suite: seeds, declared CI runtime, P(all its gates pass), min P(control fails)."""
    rows, passes, ledger = [], [], []
    for name in layout.suite_names():
        suite, exp = layout.load(name)
        ci = suite.scales.get(suite.ci_scale)
        seeds = ci_seed_count(suite)
        own_pass, own_fail = [], []
        for e in exp.entries:
            if e.role != "gate":
                continue
            if isinstance(e, CalibratedEffect) and e.seed_spread is not None and seeds and e.scale == suite.ci_scale:
                e = e.model_copy(update={"planned_n": seeds})  # as derive() plans it: the seeds a CI run trains
            p = pass_probability(e)
            if p is None:
                rows.append([name, e.claim, "—", "—", "no calibration to compute it from"])
                passes.append(0.0)
                own_pass.append(0.0)
                continue
            rows.append([name, e.claim, f"{p.honest_pass:.4f}", f"{p.control_fails:.4f}", p.how])
            passes.append(p.honest_pass)
            own_pass.append(p.honest_pass)
            own_fail.append(p.control_fails)
        ledger.append([name, seeds or "—", f"{ci.runtime_s:g}" if ci else "—",
                       f"{run_pass_probability(own_pass):.4f}" if own_pass else "no gate",
                       f"{min(own_fail):.4f}" if own_fail else "—"])
    return rows, run_pass_probability(passes), ledger
