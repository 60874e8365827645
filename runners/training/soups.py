"""Model soups of a run's trained stages, per seed: the uniform average of the ingredients'
checkpoints (runners/model/soup.py), saved beside the stage cache and evaluated like a stage; then
its paired metrics on the test split (the selection split picks the best ingredient).

The eval set is every attribute's examples in turn (runners/train.py `evaluate`); within each
attribute the first `selection_fraction` of the examples are the selection split, so both splits
hold every attribute.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from cliprepro.record import Metric
from runners.model.soup import paired, uniform_soup
from runners.schema import metric_names as names
from runners.schema.output import paired_gain
from runners.schema.train_params import Soup, TrainParams


def checkpoint(soup: Soup, ingredients: dict[str, tuple[Path, str]], cache: Path) -> Path:
    """The soup of {stage: (checkpoint, cache key)}, made once (atomic) under a key of its ingredients."""
    key = hashlib.sha256(json.dumps(sorted((n, k) for n, (_, k) in ingredients.items())).encode()).hexdigest()[:12]
    out = cache / f"soup-{key}" / "soup.pt"
    if out.exists():
        return out
    states = {name: torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
              for name, (path, _) in ingredients.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")  # saved straight to disk (a bigG soup would double memory in a buffer)
    torch.save({"state_dict": uniform_soup(states), "soup_of": sorted(ingredients)}, tmp)
    os.replace(tmp, out)
    return out


def selection_mask(n_total: int, n_attributes: int, fraction: float) -> np.ndarray:
    """True for the selection split: the first `fraction` of each attribute's block of examples."""
    per = n_total // n_attributes
    assert per * n_attributes == n_total, "every attribute evaluates the same examples"
    return (np.arange(n_total) % per) < round(fraction * per)


def _over_mean(soup: Soup, correct: dict[tuple[str, int], np.ndarray], seed: int, test: np.ndarray) -> np.ndarray:
    parts = [correct[(n, seed)].astype(np.float64)[test] for n in soup.of]
    return 100 * (correct[(soup.name, seed)].astype(np.float64)[test] - np.mean(parts, axis=0))


def measure(params: TrainParams, soup: Soup, correct: dict[tuple[str, int], np.ndarray],
            seeds: list[int]) -> tuple[dict[str, Metric], list[dict]]:
    """Per seed on the test split: soup - mean of its ingredients, and soup - the ingredient with
    the best selection-split accuracy (with McNemar's p of that pair); with `versus`, this soup's
    gain over its mean minus that soup's. Each paired per example, over seeds."""
    over_mean, over_best, versus, points = [], [], [], []
    for seed in seeds:
        soup_c = correct[(soup.name, seed)].astype(np.float64)
        select = selection_mask(soup_c.size, len(params.attributes), soup.selection_fraction)
        test = ~select
        parts = {n: correct[(n, seed)].astype(np.float64) for n in soup.of}
        best = max(soup.of, key=lambda n: (parts[n][select].mean(), n))
        over_mean.append(_over_mean(soup, correct, seed, test))
        if soup.versus:
            other = next(x for x in params.soups if x.name == soup.versus)
            versus.append(over_mean[-1] - _over_mean(other, correct, seed, test))
        over_best.append(100 * (soup_c[test] - parts[best][test]))
        pair = paired(parts[best][test], soup_c[test])
        points.append({"soup": soup.name, "seed": seed, "best_ingredient": best, "test_examples": int(test.sum()),
                       "vs_best_only_soup": pair.only_b, "vs_best_only_best": pair.only_a,
                       "vs_best_mcnemar_p": round(pair.p_value, 6)})
    metrics = {names.soup_over_mean(soup.name): paired_gain(over_mean),
               names.soup_over_best(soup.name): paired_gain(over_best)}
    if soup.versus:
        metrics[names.soup_gain_versus(soup.name, soup.versus)] = paired_gain(versus)
    return metrics, points
