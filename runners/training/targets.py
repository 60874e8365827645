"""Time to a target accuracy (FLIP Fig. 1's "3.7x faster to reach CLIP's accuracy"): pure curve
arithmetic, the speed-up's interval over seeds, and the glue that evaluates every saved epoch.

An arm's curve, per seed: (cumulative training step seconds, mean zero-shot accuracy) at each
saved epoch of its stages in order, starting from (0, chance). Step seconds exclude data wait and
evaluation (runners.upstream.steplog). The time to target is interpolated linearly between the
two evaluations around the first crossing; an arm that never reaches it within its budget (its
last point) has no time: "> budget".

The speed-up is the ratio of geometric means of the baseline's and the arm's times, with a
Welch t interval on log times: with 3 seeds per arm a percentile bootstrap over seeds covers a
95% interval far less often than stated (tests/test_targets.py simulates both).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from cliprepro.intervals import t_quantile
from cliprepro.record import Metric

Curve = list[tuple[float, float]]  # (step seconds, accuracy %)


def time_to(curve: Curve, target: float) -> float | None:
    """Seconds until the curve first reaches `target` (None: never, within its last point)."""
    for (t0, a0), (t1, a1) in zip(curve, curve[1:]):
        if a1 >= target:
            if a0 >= target:
                return t0
            return t0 + (target - a0) / (a1 - a0) * (t1 - t0)
    return None


def speedup(arm_s: list[float], baseline_s: list[float], confidence: float = 0.95) -> Metric:
    """Baseline time over arm time (geometric means over seeds), Welch t interval on the logs."""
    la, lb = [math.log(x) for x in arm_s], [math.log(x) for x in baseline_s]
    ma, mb = sum(la) / len(la), sum(lb) / len(lb)
    va = sum((x - ma) ** 2 for x in la) / (len(la) - 1)
    vb = sum((x - mb) ** 2 for x in lb) / (len(lb) - 1)
    se2 = va / len(la) + vb / len(lb)
    value = math.exp(mb - ma)
    if se2 == 0:
        return Metric(value=value, lo=value, hi=value, n=len(la), confidence=confidence, unit="x")
    df = se2 ** 2 / ((va / len(la)) ** 2 / (len(la) - 1) + (vb / len(lb)) ** 2 / (len(lb) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2)
    return Metric(value=value, lo=math.exp(mb - ma - half), hi=math.exp(mb - ma + half), n=len(la),
                  confidence=confidence, unit="x", samples=[round(x, 4) for x in arm_s])


def _step_log(logs: Path) -> list[dict]:
    from runners.training.stage import STEP_LOG

    return json.loads((logs / STEP_LOG).read_text())["epochs"]


def curve_points(chain: list, seed: int, trained: dict, evaluate_epoch) -> list[dict]:
    """One point per saved epoch of the chain's stages; `evaluate_epoch(stage, seed, epoch)` ->
    mean accuracy of that epoch's checkpoint (the final one's is the stage's own evaluation)."""
    points, step_s, samples = [], 0.0, 0
    for stage in chain:
        t = trained[(stage.name, seed)]
        epochs = _step_log(t.logs)
        for k in range(1, stage.epochs + 1):
            step_s += epochs[k - 1]["step_s"]
            samples += epochs[k - 1]["samples"]
            acc = t.scores["scores"]["acc1_mean"] if k == stage.epochs else evaluate_epoch(stage, seed, k)
            points.append({"curve_stage": stage.name, "epoch": k, "step_s_cum": round(step_s, 4),
                           "samples_cum": samples, "acc1_mean": round(acc, 4)})
    return points


def measure(tt, params, trained: dict, evaluate_epoch, chance_pct: float):
    """(metrics, points, skips) of one time-to-target comparison."""
    from runners.schema import metric_names as names

    by_name = {s.name: s for s in params.stages}
    times: dict[str, list[float]] = {}
    budgets: dict[str, list[str]] = {}
    points = []
    for side, chain in (("arm", tt.arm), ("baseline", tt.baseline)):
        stages = [by_name[n] for n in chain]
        seeds = [s for s in params.seeds if all((n, s) in trained for n in chain)]
        for seed in seeds:
            pts = curve_points(stages, seed, trained, evaluate_epoch)
            reached = time_to([(0.0, chance_pct)] + [(p["step_s_cum"], p["acc1_mean"]) for p in pts], tt.target_acc1_pct)
            points += [{"time_to_target": tt.name, "side": side, "seed": seed, **p} for p in pts]
            points.append({"time_to_target": tt.name, "side": side, "seed": seed, "target_acc1_pct": tt.target_acc1_pct,
                           "step_s_to_target": None if reached is None else round(reached, 4),
                           "budget_step_s": pts[-1]["step_s_cum"]})
            if reached is None:
                budgets.setdefault(side, []).append(f"seed {seed}: > budget {pts[-1]['step_s_cum']:.1f} s")
            else:
                times.setdefault(side, []).append(reached)
    metrics, skips = {}, {}
    for side in ("arm", "baseline"):
        if side in budgets:
            skips[names.step_s_to_target(tt.name, side)] = f"never reached {tt.target_acc1_pct:g}%: " + "; ".join(budgets[side])
        elif len(times.get(side, [])) > 1:
            ts = times[side]
            metrics[names.step_s_to_target(tt.name, side)] = Metric(
                value=sum(ts) / len(ts), n=len(ts), unit="s", samples=[round(x, 4) for x in ts], over="seeds")
    if budgets:
        skips[names.speedup_to_target(tt.name)] = ("> budget: " + "; ".join(
            f"{side} {', '.join(v)}" for side, v in budgets.items()) + f" (target {tt.target_acc1_pct:g}%)")
    else:
        metrics[names.speedup_to_target(tt.name)] = speedup(times["arm"], times["baseline"])
    return metrics, points, skips
