"""An ablation table's metrics (pure functions of per-example outcomes and step rates): per row
after the base, its paired zero-shot gain over the row before and the training step time it saves.

Step time is the step-only rate of the step log (data wait excluded; runners.upstream.steplog):
at equal samples, time saved = 1 - rate_before / rate_row, per seed both rows trained; the
claim's interval is the t interval over those seeds. It carries the worse data-wait fraction of the two rows, so a row
timed while waiting for data is inconclusive (cliprepro.claims).
"""
from __future__ import annotations

import statistics

import numpy as np

from cliprepro.record import Metric
from runners.schema import metric_names as names
from runners.schema.train_params import TrainParams
from runners.training.contrasts import contrast


def time_saved(before: dict[int, dict], row: dict[int, dict]) -> Metric:
    """`before` / `row`: per seed, the step log's summary point (step_samples_per_s, data_wait_fraction)."""
    seeds = sorted(set(before) & set(row))
    saved = [100 * (1 - before[s]["step_samples_per_s"] / row[s]["step_samples_per_s"]) for s in seeds]
    wait = max((p["data_wait_fraction"] for s in seeds for p in (before[s], row[s])), default=None)
    if not saved:
        nan = float("nan")
        return Metric(value=nan, lo=nan, hi=nan, n=0, unit="%", over="seeds")
    mean = statistics.fmean(saved)
    # over seeds with no evaluation sampling (eval_se 0): the claim's interval is the t interval
    # of these per-seed values (cliprepro.intervals.seed_interval), as for any per-seed metric
    return Metric(value=mean, lo=mean, hi=mean, n=len(saved), confidence=0.95, unit="%",
                  samples=[round(x, 4) for x in saved], over="seeds", eval_se=0.0,
                  data_wait_fraction=None if wait is None else round(wait, 4))


def rows_metrics(params: TrainParams, correct: dict[tuple[str, int], np.ndarray],
                 points: list[dict]) -> dict[str, Metric]:
    timed: dict[str, dict[int, dict]] = {}
    for p in points:
        if "step_samples_per_s" in p and "stage" in p:
            timed.setdefault(p["stage"], {})[p["seed"]] = p
    out: dict[str, Metric] = {}
    for before, row in zip(params.ablation, params.ablation[1:]):
        out[names.gain(row.name)] = contrast(params, correct, {row.stage: 1.0, before.stage: -1.0})
        out[names.train_time_saved(row.name)] = time_saved(timed.get(before.stage, {}), timed.get(row.stage, {}))
    return out
