"""What a runner returns: plain data the core judges and records (no torch objects)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cliprepro.record import Metric
from cliprepro.stats import median_interval


@dataclass
class Output:
    metrics: dict[str, Metric] = field(default_factory=dict)
    beside: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> shown beside it
    points: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # plan mismatches etc.: every claim -> error
    skip: dict[str, str] = field(default_factory=dict)  # metric -> why its claim is skipped
    inputs: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)


def exact(value: float, unit: str) -> Metric:
    return Metric(value=value, lo=value, hi=value, n=1, unit=unit)


def from_samples(samples: list[float], unit: str) -> Metric:
    """Median of per-round (or per-seed) samples with its order-statistic interval."""
    med, lo, hi, conf = median_interval(samples)
    return Metric(value=med, lo=lo, hi=hi, n=len(samples), confidence=round(conf, 4), unit=unit,
                  samples=[round(s, 6) for s in samples])


def paired_gain(diffs_by_seed: list["np.ndarray"], reps: int, seed: int = 0, unit: str = "pp") -> Metric:
    """Mean paired difference with a bootstrap interval over seeds, then examples (DESIGN.md)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for r in range(reps):
        picked = rng.integers(len(diffs_by_seed), size=len(diffs_by_seed))
        means[r] = np.mean([diffs_by_seed[s][rng.integers(len(diffs_by_seed[s]), size=len(diffs_by_seed[s]))].mean()
                            for s in picked])
    value = float(np.mean([d.mean() for d in diffs_by_seed]))
    lo, hi = np.quantile(means, [0.025, 0.975])
    return Metric(value=value, lo=float(lo), hi=float(hi), n=len(diffs_by_seed), confidence=0.95,
                  unit=unit, samples=[round(float(d.mean()), 6) for d in diffs_by_seed])
