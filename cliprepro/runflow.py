"""Running one suite at one scale: plan, requirements, runner, verdicts, record.

Runners (and so torch) are imported only when a suite really runs or prints its plan.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from cliprepro import progress
from cliprepro import record as rec
from cliprepro.errors import InputError
from cliprepro.layout import Layout
from cliprepro.provenance import LoadSampler, collect
from cliprepro.spec import ExpectedEntry, Suite, describe_validation_error
from cliprepro.verdict import judge, judged_interval, threshold

RUNTIME_OVERRUN = 1.5  # a run over 1.5x its declared runtime is an error
# the pace (runners/timing/pace.py) of the machine the CPU runtimes were declared on: the 2-core AMD
# EPYC machine of 2026-12-01, measured there (21-22 ms; once 17) when flip_speedup ran in its declared
# 75 s; the limit of a run over 1.5x is widened by pace / this (docs/design.md, "Runtime guard")
REFERENCE_PACE_MS = 21.0


def machine_pace_ms() -> float:
    from runners.timing.pace import pace_ms

    return pace_ms()


def judge_runtime(wall_s: float, runtime_s: float, field: str, measure_pace_ms: Callable[[], float] | None
                  ) -> tuple[str, dict[str, float]]:
    """(why the run is an error or "", timings). A run over RUNTIME_OVERRUN x its declared runtime
    is an error unless this machine's pace, measured then (runs within the limit never pay for it),
    is that much slower than the reference machine's the runtimes were declared on. No
    measure_pace_ms (a GPU scale: a CPU's pace says nothing of it): the plain limit."""
    limit_s = RUNTIME_OVERRUN * runtime_s
    timings = {"wall_s": round(wall_s, 3), "runtime_limit_s": round(limit_s, 1)}
    if wall_s <= limit_s:
        return "", timings
    over = f"ran {wall_s:.0f} s, over {RUNTIME_OVERRUN}x the declared runtime_s {runtime_s:g} of {field}"
    if measure_pace_ms is None:
        return over, timings
    try:
        pace = measure_pace_ms()
    except Exception as exc:  # the run's record is never lost to its probe: judged on the plain limit
        return f"{over} (this machine's pace could not be measured: {type(exc).__name__}: {exc})", timings
    slower = max(1.0, pace / REFERENCE_PACE_MS)  # a faster machine never tightens the limit
    timings.update(pace_ms=round(pace, 2), runtime_limit_s=round(limit_s * slower, 1))
    if wall_s <= limit_s * slower:
        return "", timings
    return (f"{over} (x{slower:.2f} for this machine's pace, {pace:.1f} ms against the reference "
            f"{REFERENCE_PACE_MS:g} ms)"), timings


@dataclass
class Outcome:
    record_id: str | None
    path: Path | None
    record: rec.Record
    plan_text: str = ""


def cuda_available() -> bool:
    from runners import quiet_profiler_logs

    quiet_profiler_logs()  # may be the first import of torch
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def released_weights_configured(layout: Layout, suite: Suite) -> bool:
    """Every stage's released checkpoint and the ImageNet folder are in the user config."""
    from cliprepro.userconfig import load

    plan = suite.scales.get("paper")
    if plan is not None and suite.runner_at("paper") == "released":
        from runners.released import configured

        _, params = runner_params(layout, suite, "paper", None)
        return configured(params, layout.root)
    if plan is None or suite.runner != "train":
        return False
    config, _ = load(layout.root)
    keys = [stage.get("weights_key") for stage in plan.params.get("stages", [])]
    return bool(config.imagenet_val and Path(config.imagenet_val).is_dir() and keys
                and all(k in config.weights and Path(config.weights[k]).exists() for k in keys))


def pick_scale(suite: Suite, requested: str, cuda: bool, weights: bool = False, own_data: bool = False) -> str:
    """auto: the architecture suites' own scale; paper when released weights and ImageNet are
    configured; else gpu with CUDA (a gpu scale that trains on your own data only when the user
    config has own_data), else proxy. Paper-scale training is never picked."""
    if requested != "auto":
        if requested not in suite.scales:
            raise InputError(f"suites/{suite.suite}.yaml", "scales",
                             f"no {requested!r} scale planned; this suite has {', '.join(sorted(suite.scales))}")
        return requested
    if suite.runner == "architecture":
        return suite.ci_scale
    if weights:
        return "paper"
    if cuda and "gpu" in suite.scales and (own_data or suite.params_for("gpu").get("data") != "own_data"):
        return "gpu"
    return "proxy" if "proxy" in suite.scales else suite.ci_scale




CALIBRATION_SEEDS_MIN = 3  # seeds per calibration run, however few a CI run trains


def calibration_seeds(seed_base: int, index: int, n: int) -> list[int]:
    """Seeds of calibration run `index`: at least CALIBRATION_SEEDS_MIN (a calibration measures
    the one-seed spread a CI run of n seeds is judged with: 3 runs of 3 give it 8 degrees of
    freedom); a calibration draws its own seed_base (cliprepro.calibration), so its models share
    no seed with a check run (the suite's small seeds) or another calibration."""
    n = max(n, CALIBRATION_SEEDS_MIN)
    return [seed_base + index * n + k for k in range(n)]


def runner_params(layout: Layout, suite: Suite, scale: str, control: str | None,
                  calibration: tuple[int, int] | None = None, stored: dict | None = None):
    """The runner and its validated params; `calibration` = (seed_base, run index) replaces the
    seeds; `stored` (a record's config params, for a rerun) replaces the suite's."""
    from runners import get, params_schema

    runner = get(suite.runner_at(scale))
    data = dict(stored) if stored is not None else suite.params_for(scale, control)
    if calibration is not None and "seeds" in data:
        data["seeds"] = calibration_seeds(*calibration, len(data["seeds"]))
    schema = params_schema(suite.runner_at(scale), scale)
    try:
        params = schema.model_validate(data)
    except ValidationError as exc:
        err = describe_validation_error(layout.suites / f"{suite.suite}.yaml", exc, schema)
        raise InputError(err.path, f"scales.{scale}.params.{err.field}", err.problem) from None
    return runner, params


def select_entries(suite: Suite, entries: list[ExpectedEntry], scale: str, claims: list[str],
                   control: str | None, path: Path) -> list[ExpectedEntry]:
    chosen = [e for e in entries if e.scale == scale]
    known = {e.claim for e in chosen}
    for claim in claims:
        if claim not in known:
            raise InputError(path, "--claim", f"{claim!r} has no {scale} entry; allowed: "
                             f"{', '.join(sorted(known)) or '(none)'}")
    if claims:
        chosen = [e for e in chosen if e.claim in claims]
    if control:
        chosen = [e for e in chosen if e.claim in suite.gates_of(control)]
    return chosen


def _result(entry: ExpectedEntry, verdict: str, reason: str, metric: rec.Metric | None = None,
            beside: dict[str, float] | None = None) -> rec.ClaimResult:
    lo, hi = judged_interval(entry, metric.measured()) if metric else (None, None)
    return rec.ClaimResult(
        claim=entry.claim, scale=entry.scale, role=entry.role, metric=entry.metric, verdict=verdict,
        reason=reason, value=metric.value if metric else None, lo=lo, hi=hi,
        n=metric.n if metric else 0, threshold=threshold(entry), beside=beside or {})


def judge_all(entries: list[ExpectedEntry], metrics: dict[str, rec.Metric],
              beside: dict[str, dict[str, float]], errors: list[str],
              skip: dict[str, str] | None = None, failed: dict[str, str] | None = None) -> list[rec.ClaimResult]:
    results = []
    for entry in entries:
        metric = metrics.get(entry.metric)
        if skip and entry.metric in skip and not errors:
            results.append(_result(entry, "skipped", skip[entry.metric]))
            continue
        if failed and entry.metric in failed:
            results.append(_result(entry, "error", failed[entry.metric]))
            continue
        if errors:
            results.append(_result(entry, "error", "; ".join(errors), metric, beside.get(entry.metric)))
            continue
        verdict, reason = judge(entry, metric.measured() if metric else None)
        results.append(_result(entry, verdict, reason, metric, beside.get(entry.metric)))
    return results


def explain_misses(runner, params, entries: list[ExpectedEntry], results: list[rec.ClaimResult],
                   build: Path) -> list[rec.ClaimResult]:
    """A released-weights claim that missed, re-measured by the runner over its declared confounders
    (runners/released.py); the finding goes beside the verdict, which it never changes."""
    explain = getattr(runner, "explain", None)
    if explain is None:
        return results
    by_key = {e.key(): e for e in entries}
    out = []
    for r in results:
        e = by_key[(r.claim, r.scale)]
        if r.verdict == "not_reproduced" and e.kind == "released_weights":
            with progress.unit(f"{r.claim}: explaining the miss over the declared confounders", None, "grid"):
                r = r.model_copy(update={"explanation": explain(params, e.metric, e.value, e.tolerance(), build)})
        out.append(r)
    return out


def execute(layout: Layout, name: str, *, scale: str = "auto", dry_run: bool = False,
            claims: list[str] | None = None, out: Path | None = None, control: str | None = None,
            record_type: str = "run", calibration: tuple[int, int] | None = None,
            build: Path | None = None, stored_params: dict | None = None,
            runner_kwargs: dict | None = None, alongside: tuple[str, ...] = ()) -> Outcome:
    """One suite at one scale: measure, judge, write the record. `calibration` = (seed_base, run
    index) for a calibration run; `build` replaces build/ as the runner's cache (a fresh one for
    calibration, cliprepro.calibration); `runner_kwargs` go to the runner's run (a launched
    training's checkpoints, cliprepro.launching); `alongside`: the suites run at the same time
    on the shared trainers (cliprepro.batch), which judges their runtime together."""
    from cliprepro.userconfig import load as load_config

    suite, expected = layout.load(name)
    config, _ = load_config(layout.root)  # one that names what is not there is exit 2 before anything runs
    scale = pick_scale(suite, scale, cuda_available(), released_weights_configured(layout, suite),
                       config.own_data is not None)
    plan = suite.scales[scale]
    if control and control not in suite.negative_controls:
        raise InputError(layout.suites / f"{name}.yaml", "negative_controls",
                         f"no control {control!r}; defined: {', '.join(sorted(suite.negative_controls)) or '(none)'}")
    entries = select_entries(suite, expected.entries, scale, claims or [], control,
                             layout.expected / f"{name}.yaml")
    runner, params = runner_params(layout, suite, scale, control, calibration, stored_params)
    config = {"params": params.model_dump(mode="json"), "runtime_s": plan.runtime_s,
              "hardware": plan.hardware, "requires": list(plan.requires)}
    kind = "negative_control" if control and record_type != "calibration" else record_type
    base = dict(schema_version=rec.SCHEMA_VERSION, record_type=kind,
                suite=suite.suite, suite_version=suite.version, scale=scale, negative_control=control,
                expected=entries, config=config)
    if dry_run:
        text = (f"{suite.suite} @ {scale} (dry run; hardware: {plan.hardware}; expected runtime "
                f"{plan.runtime_s:g} s)\n{runner.plan(params, scale)}")
        return Outcome(None, None, rec.Record(**base, status="skipped", message="dry run", results=[],
                                              provenance={}), plan_text=text)
    missing = [r for r in plan.requires if r == "cuda" and not cuda_available()]
    before = collect(layout.root)  # start time and load before the run, not after it
    if calibration is not None:  # what makes it re-makeable, checked by validate (cliprepro.calibration)
        before["calibration"] = {"seed_base": calibration[0], "run_index": calibration[1],
                                 "fresh_cache": build is not None and build != layout.build}
    if alongside:  # sharing the trainers: its wall time is the group's, judged as one (cliprepro.batch)
        before["ran_alongside"] = [n for n in alongside if n != name]
    started = time.time()
    if missing:
        message = (f"the {scale} scale needs CUDA ({plan.hardware}); none is visible here. "
                   f"Run it on a GPU machine, or use --scale proxy on a CPU.")
        results = [_result(e, "skipped", message) for e in entries]
        record = rec.Record(**base, status="skipped", message=message, results=results,
                            provenance={**before, "device": {"device_class": "none (requirement missing)"}})
    else:
        sampler = LoadSampler()
        try:
            with sampler, progress.scope(suite.suite, scale):
                output = runner.run(params, scale, build_dir=build or layout.build, **(runner_kwargs or {}))
        except Exception as exc:  # a crash is an `error` verdict with its cause, never not_reproduced
            message = f"runner crashed: {type(exc).__name__}: {exc}"
            tail = traceback.format_exc(limit=-3)
            results = [_result(e, "error", message) for e in entries]
            record = rec.Record(**base, status="error", message=message + "\n" + tail, results=results,
                                provenance={**before, "device": {}, "load_avg_during": sampler.summary()},
                                timings={"wall_s": round(time.time() - started, 3)})
        else:
            wall_s = time.time() - started
            message, timings = "", {"wall_s": round(wall_s, 3)}
            if not control and not alongside:  # a control's params differ: its runtime is not the scale's
                message, timings = judge_runtime(wall_s - output.remeasured_s, plan.runtime_s, f"scales.{scale}",
                                                 None if plan.requires else machine_pace_ms)
            if output.remeasured_s:  # disturbed sweeps measured again: not judged as the suite's time
                timings.update(wall_s=round(wall_s, 3), remeasured_s=round(output.remeasured_s, 3))
                if message:
                    message += (f" (after leaving out {output.remeasured_s:.0f} s of timed sweeps measured again; "
                                f"{wall_s:.0f} s in all)")
            status = "error" if message else "completed"
            results = judge_all(entries, output.metrics, output.beside, output.errors, output.skip, output.failed)
            results = explain_misses(runner, params, entries, results, build or layout.build)
            record = rec.Record(**base, status=status, message=message, results=results,
                                metrics=output.metrics, points=output.points, inputs=output.inputs,
                                provenance={**before, "device": output.device,
                                            "load_avg_during": sampler.summary()},
                                timings=timings)
    nothing = bool(record.results) and all(x.verdict == "skipped" for x in record.results)
    folder = out_folder(layout, scale, record.record_type, out, record.status, nothing)
    rid, path = rec.write(record, folder)
    return Outcome(rid, path, record)


def out_folder(layout: Layout, scale: str, record_type: str, out: Path | None, status: str,
               measured_nothing: bool = False) -> Path:
    """Proxy, control and skipped runs go to build/ (CI regressions); gpu / paper runs to results/
    (committed) when they measured something; calibration records to results/calibration/ (cited
    by expected/)."""
    if record_type == "calibration" and status == "completed":
        return layout.calibration  # a failed calibration run is kept under build/, never cited
    if out is not None:
        return out / "results"
    if scale == "proxy" or record_type == "negative_control" or status == "skipped" or measured_nothing:
        return layout.build / "results"
    return layout.results
