"""Model soups (Wortsman et al., 2022), as OpenCLIP's bigG/14 made its 80.1: the uniform soup
averages every ingredient's weights; the greedy soup takes ingredients in order of their accuracy
on a held-out selection split and keeps each only if the soup does not get worse there.

Over state dicts of one architecture: a key or a shape that differs is refused, naming it; integer
buffers (counters, indices) must agree and are kept, not averaged. A soup is compared with an
ingredient by a paired test on the same test examples (`paired`), never by two accuracies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from scipy.stats import binomtest

from cliprepro.intervals import Z95

StateDict = Mapping[str, torch.Tensor]


class SoupError(ValueError):
    """Ingredients that cannot be averaged (different architectures)."""


def check_compatible(ingredients: Mapping[str, StateDict]) -> None:
    names = list(ingredients)
    if len(names) < 2:
        raise SoupError(f"a soup needs at least two ingredients, got {len(names)}")
    first, ref = names[0], ingredients[names[0]]
    for name in names[1:]:
        sd = ingredients[name]
        missing, extra = sorted(set(ref) - set(sd)), sorted(set(sd) - set(ref))
        if missing or extra:
            raise SoupError(f"{name} and {first} differ in keys: {name} lacks {missing[:3]}, has extra "
                            f"{extra[:3]} ({len(missing)} / {len(extra)}): not one architecture")
        for key, tensor in ref.items():
            if tuple(sd[key].shape) != tuple(tensor.shape):
                raise SoupError(f"{name} and {first} differ at {key}: shape {tuple(sd[key].shape)} vs "
                                f"{tuple(tensor.shape)}: not one architecture")
            if not tensor.is_floating_point() and not torch.equal(sd[key], tensor):
                raise SoupError(f"{name} and {first} differ in the integer buffer {key}: it cannot be averaged")


def average(state_dicts: list[StateDict]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors (accumulated in float64, cast back); integer buffers
    as they are (check_compatible made sure they agree)."""
    out = {}
    for key, tensor in state_dicts[0].items():
        if tensor.is_floating_point():
            acc = sum(sd[key].to(torch.float64) for sd in state_dicts) / len(state_dicts)
            out[key] = acc.to(tensor.dtype)
        else:
            out[key] = tensor.clone()
    return out


def uniform_soup(ingredients: Mapping[str, StateDict]) -> dict[str, torch.Tensor]:
    check_compatible(ingredients)
    return average(list(ingredients.values()))


@dataclass(frozen=True)
class GreedyStep:
    ingredient: str
    alone_acc: float  # the ingredient's own selection-split accuracy
    soup_acc: float  # the soup's selection-split accuracy with it added
    kept: bool


def greedy_soup(ingredients: Mapping[str, StateDict], selection_acc: Callable[[StateDict], float]
                ) -> tuple[dict[str, torch.Tensor], list[str], list[GreedyStep]]:
    """(soup, the ingredients kept, the log). Ingredients in order of selection accuracy (ties by
    name); each is kept only if the soup's selection accuracy does not drop."""
    check_compatible(ingredients)
    alone = {name: selection_acc(sd) for name, sd in ingredients.items()}
    order = sorted(alone, key=lambda n: (-alone[n], n))
    kept, soup = [order[0]], dict(ingredients[order[0]])
    best = alone[order[0]]
    log = [GreedyStep(order[0], alone[order[0]], best, True)]
    for name in order[1:]:
        candidate = average([ingredients[k] for k in kept + [name]])
        acc = selection_acc(candidate)
        keep = acc >= best  # no worse on the selection split
        if keep:
            kept, soup, best = kept + [name], candidate, acc
        log.append(GreedyStep(name, alone[name], acc, keep))
    return soup, kept, log


@dataclass(frozen=True)
class Paired:
    """B - A on the same examples: accuracy difference (pp) with its 95% interval, and McNemar's
    exact two-sided p-value on the discordant pairs."""
    diff_pp: float
    lo_pp: float
    hi_pp: float
    only_a: int  # examples A gets right and B wrong
    only_b: int
    n: int
    p_value: float


def paired(correct_a: np.ndarray, correct_b: np.ndarray) -> Paired:
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired outcomes need one equal-length 1-D set of examples, got {a.shape} and {b.shape}")
    n = a.size
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    d = (only_b - only_a) / n
    var = ((only_a + only_b) / n - d * d) / n  # of the mean of per-example differences (-1, 0, 1)
    half = Z95 * math.sqrt(max(var, 0.0) * n / (n - 1)) if n > 1 else math.inf
    m = only_a + only_b
    p = float(binomtest(only_a, m, 0.5).pvalue) if m else 1.0  # McNemar's exact test
    return Paired(100 * d, 100 * (d - half), 100 * (d + half), only_a, only_b, n, p)
