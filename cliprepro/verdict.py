"""Verdicts: pure functions from (expected entry, measurement) to a verdict and its reason.

Each claim kind judges itself (cliprepro.claims); this module holds what is common: the five
verdicts, the exit status, and the calibration of a proxy effect from its runs. Gates decide the
exit status, findings are reported only.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from cliprepro.claims import Claim, Measured

__all__ = ["VERDICTS", "Measured", "judge", "threshold", "exit_status", "Calibrated", "calibrate",
           "attainability_problems"]
VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "skipped", "error")


def judge(entry: Claim, m: Measured | None) -> tuple[str, str]:
    """(verdict, reason) for one expected entry and its measurement."""
    return entry.judge(m)


def threshold(entry: Claim) -> float | None:
    """The bound an interval is compared with, for one-sided kinds; None otherwise."""
    return entry.threshold()


def judged_interval(entry: Claim, m: Measured) -> tuple[float | None, float | None]:
    """The interval the verdict used (over seeds: widened by the seed spread)."""
    if m.value is None or m.lo is None or m.hi is None or not all(map(math.isfinite, (m.value, m.lo, m.hi))):
        return m.lo, m.hi
    lo, hi, _ = entry.interval(m)
    return lo, hi


def attainability_problems(entry: Claim) -> list[str]:
    return entry.problems()


def exit_status(results: Iterable[tuple[str, str]]) -> int:
    """(role, verdict) pairs -> 1 if any error or any gate not reproduced, else 0."""
    for role, verdict in results:
        if verdict == "error" or (role == "gate" and verdict != "reproduced"):
            return 1
    return 0


@dataclass(frozen=True)
class Calibrated:
    value: float
    spread: float  # SD of the run-level values
    halfwidth: float  # median half-width of the runs' own intervals
    n: int  # seeds (or rounds) per run
    seed_sd: float | None = None  # over seeds: SD of every per-seed value of every run
    seed_df: int | None = None
    eval_se: float | None = None


def calibrate(values: list[float], halfwidths: list[float], n: int = 1,
              per_seed: list[float] | None = None, eval_ses: list[float] | None = None) -> Calibrated:
    """Expected value, spread and reachable half-width from >= 3 calibration runs; over seeds also
    the one-seed spread (calibration runs use seeds of their own, so all per-seed values are
    independent draws) and the median evaluation s.e."""
    if len(values) < 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"calibration needs >= 3 finite values, got {values}")
    seed_sd = seed_df = eval_se = None
    if per_seed is not None:
        seed_sd, seed_df = round(statistics.stdev(per_seed), 4), len(per_seed) - 1
        eval_se = round(statistics.median(eval_ses), 4) if eval_ses else None
    return Calibrated(value=round(statistics.median(values), 4), spread=round(statistics.stdev(values), 4),
                      halfwidth=round(statistics.median(halfwidths), 4), n=n, seed_sd=seed_sd,
                      seed_df=seed_df, eval_se=eval_se)
