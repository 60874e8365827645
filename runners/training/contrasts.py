"""Paired comparisons of trained stages on one eval set (pure functions of per-example outcomes).

`correct[(stage, seed)]` holds 0/1 per eval example, in the same order for every stage. Every
comparison is paired: per seed, a per-example difference; `runners.schema.output.paired_gain` gives the
mean over seeds with its evaluation s.e. (the claim adds the seed spread). Only seeds that every
stage involved trained are used.
"""
from __future__ import annotations

import math

import numpy as np

from cliprepro.record import Metric
from runners.schema import metric_names as names
from runners.schema.output import paired_gain
from runners.schema.train_params import TrainParams


def common_seeds(params: TrainParams, stages: list[str]) -> list[int]:
    by_name = {s.name: s for s in params.stages}
    seeds = [set(params.seeds_of(by_name[n])) for n in stages]
    return [s for s in params.seeds if all(s in x for x in seeds)]


def contrast(params: TrainParams, correct: dict[tuple[str, int], np.ndarray], terms: dict[str, float]) -> Metric:
    """sum(coef x accuracy) in pp, paired per example."""
    seeds = common_seeds(params, list(terms))
    diffs = [100 * sum(coef * correct[(stage, s)].astype(np.float64) for stage, coef in terms.items())
             for s in seeds]
    return paired_gain(diffs)


def best_of(gains: list[Metric]) -> Metric:
    """`best` beats all: the minimum over pairwise gains of value, lower and upper bound, so the
    lower bound is > 0 only if every pairwise lower bound is, and the upper bound < 0 as soon as
    one other stage is surely better. The largest evaluation s.e. goes with it (a claim widening
    the minimum by it is never narrower than the narrowest pairwise). A NaN anywhere is NaN."""
    nan = float("nan")
    cells = [(g.value, g.lo, g.hi, g.eval_se) for g in gains]
    if not cells or any(x is None or math.isnan(x) for cell in cells for x in cell):
        return Metric(value=nan, lo=nan, hi=nan, n=min((g.n for g in gains), default=0), unit="pp", over="seeds")
    return Metric(value=min(c[0] for c in cells), lo=min(c[1] for c in cells), hi=min(c[2] for c in cells),
                  n=min(g.n for g in gains), confidence=gains[0].confidence, unit="pp", over="seeds",
                  eval_se=max(c[3] for c in cells))


def all_metrics(params: TrainParams, correct: dict[tuple[str, int], np.ndarray]) -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    for c in params.compare:
        metrics[names.gain(c.name)] = contrast(params, correct, {c.b: 1.0, c.a: -1.0})
    for c in params.contrasts:
        metrics[names.contrast(c.name)] = contrast(params, correct, c.terms)
    for b in params.best_of:
        pairwise = []
        for other in b.others:
            gain = contrast(params, correct, {b.best: 1.0, other: -1.0})
            metrics[names.best_over(b.best, other)] = gain
            pairwise.append(gain)
        metrics[names.best_of(b.name)] = best_of(pairwise)
    return metrics
