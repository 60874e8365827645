"""What a runner returns: plain data the core judges and records (no torch objects)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cliprepro.intervals import Z95
from cliprepro.record import Metric
from cliprepro.stats import median_interval

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Output:
    metrics: dict[str, Metric] = field(default_factory=dict)
    beside: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> shown beside it
    points: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # plan mismatches etc.: every claim -> error
    skip: dict[str, str] = field(default_factory=dict)  # metric -> why its claim is skipped
    failed: dict[str, str] = field(default_factory=dict)  # metric -> why its claim is an error (refused input)
    inputs: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    # seconds spent on timed sweeps measured again because something else took the device: the
    # machine's cost, not the suite's; the runtime guard leaves them out (cliprepro.runflow)
    remeasured_s: float = 0.0


def exact(value: float, unit: str) -> Metric:
    return Metric(value=value, lo=value, hi=value, n=1, unit=unit, over="exact")


def from_samples(samples: list[float], unit: str) -> Metric:
    """Median of per-round samples with its order-statistic interval."""
    med, lo, hi, conf = median_interval(samples)
    return Metric(value=med, lo=lo, hi=hi, n=len(samples), confidence=round(conf, 4), unit=unit,
                  samples=[round(s, 6) for s in samples], over="rounds")


def paired_gain(diffs_by_seed: list["np.ndarray"], unit: str = "pp") -> Metric:
    """Mean over seeds of per-example paired differences, with the evaluation-sampling standard
    error of that mean and its 95% interval (value ± 1.96 s.e.). The seed-to-seed spread is not
    in it: the claim judging it adds that (cliprepro.intervals), so the interval covers for any
    number of seeds. Seeds evaluated on one eval set are paired per example across seeds too."""
    import numpy as np

    diffs = [np.asarray(d, dtype=np.float64) for d in diffs_by_seed]
    n = len(diffs)
    value = float(np.mean([d.mean() for d in diffs]))
    if len({d.shape for d in diffs}) == 1:  # one eval set: the per-example mean over seeds
        per_example = np.mean(diffs, axis=0)
        se = float(per_example.std(ddof=1) / np.sqrt(per_example.size)) if per_example.size > 1 else 0.0
    else:
        se = float(np.sqrt(sum(d.var(ddof=1) / d.size for d in diffs)) / n)
    return Metric(value=value, lo=value - Z95 * se, hi=value + Z95 * se, n=n, confidence=0.95,
                  unit=unit, samples=[round(float(d.mean()), 6) for d in diffs], over="seeds",
                  eval_se=round(se, 6))
