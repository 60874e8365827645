"""Verdicts: pure functions from (expected entry, measurement) to a verdict and its reason.

The judging table is DESIGN.md "Verdicts". Five verdicts; gates decide the exit status, findings
are reported only. A missing or non-finite measurement is `error`, never `not_reproduced`, and
never `reproduced`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from cliprepro.spec import ExpectedEntry

VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "skipped", "error")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Measured:
    """One measured value with its interval (lo == hi == value for exact counts)."""
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 1


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def threshold(entry: ExpectedEntry) -> float | None:
    """The bound an interval is compared with, for one-sided kinds; None otherwise."""
    if entry.value is None:
        return None
    if entry.kind == "at_least":
        return entry.value * (1 - entry.tolerance)
    if entry.kind == "direction":
        return entry.value
    if entry.kind == "at_most":
        return entry.value * (1 + entry.tolerance)
    if entry.kind == "calibrated_effect":
        assert entry.null_value is not None
        return entry.null_value + entry.tolerance * (entry.value - entry.null_value)
    return None


def band(entry: ExpectedEntry) -> float:
    """Half-width of the region a measurement may land in and still count (attainability)."""
    thr = threshold(entry)
    return abs(entry.value - thr) if thr is not None and entry.value is not None else entry.tolerance


def _one_sided(lo: float, hi: float, thr: float, upward: bool) -> tuple[str, str]:
    if upward:
        if lo >= thr:
            return "reproduced", f"lower bound {lo:.4g} >= threshold {thr:.4g}"
        if hi < thr:
            return "not_reproduced", f"upper bound {hi:.4g} < threshold {thr:.4g}"
        return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] straddles threshold {thr:.4g}"
    if hi <= thr:
        return "reproduced", f"upper bound {hi:.4g} <= threshold {thr:.4g}"
    if lo > thr:
        return "not_reproduced", f"lower bound {lo:.4g} > threshold {thr:.4g}"
    return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] straddles threshold {thr:.4g}"


def judge(entry: ExpectedEntry, m: Measured | None) -> tuple[str, str]:
    """(verdict, reason) for one expected entry and its measurement."""
    if entry.value is None:
        return "error", "not calibrated yet: run `cliprepro calibrate` and commit its records"
    if m is None or m.value is None:
        return "error", f"no measurement of {entry.metric!r}"
    if not _finite(m.value):
        return "error", f"measurement of {entry.metric!r} is not finite ({m.value})"
    if entry.kind in ("exact", "released_weights"):
        diff = abs(m.value - entry.value)
        ok = diff <= entry.tolerance + 1e-12  # printed precision is inclusive
        word = "within" if ok else "outside"
        return ("reproduced" if ok else "not_reproduced"), (
            f"|{m.value:.6g} - {entry.value:g}| = {diff:.3g} {word} tolerance {entry.tolerance:g}")
    if not _finite(m.lo, m.hi):
        return "error", f"{entry.kind} needs an interval; {entry.metric!r} has none"
    assert m.lo is not None and m.hi is not None
    if entry.kind == "two_sided":
        a, b = entry.value - entry.tolerance, entry.value + entry.tolerance
        if a <= m.lo and m.hi <= b:
            return "reproduced", f"interval [{m.lo:.4g}, {m.hi:.4g}] inside [{a:.4g}, {b:.4g}]"
        if m.hi < a or m.lo > b:
            return "not_reproduced", f"interval [{m.lo:.4g}, {m.hi:.4g}] outside [{a:.4g}, {b:.4g}]"
        return "inconclusive", f"interval [{m.lo:.4g}, {m.hi:.4g}] overlaps the edge of [{a:.4g}, {b:.4g}]"
    thr = threshold(entry)
    assert thr is not None
    if entry.kind == "direction":  # the paper's direction, beyond the pre-registered margin
        lo, hi, how = seed_widened(m, entry.seed_spread)
        if lo > thr:
            return "reproduced", f"lower bound {lo:.4g}{how} > margin {thr:.4g}: the paper's direction"
        if hi < thr:
            return "not_reproduced", f"upper bound {hi:.4g}{how} < margin {thr:.4g}: not the paper's direction"
        return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}]{how} includes margin {thr:.4g}"
    upward = entry.kind == "at_least" or (
        entry.kind == "calibrated_effect" and entry.value >= (entry.null_value or 0.0))
    return _one_sided(m.lo, m.hi, thr, upward)


def seed_widened(m: Measured, seed_spread: float | None) -> tuple[float, float, str]:
    """A one-seed interval covers the evaluation sample only; with a declared seed spread s it is
    widened on each side to sqrt(side^2 + (1.96 s)^2). Intervals over >= 2 seeds are kept."""
    assert m.value is not None and m.lo is not None and m.hi is not None
    if m.n >= 2 or not seed_spread:
        return m.lo, m.hi, "" if m.n >= 2 else " (one seed: evaluation sampling only)"
    z = 1.959964 * seed_spread
    lo = m.value - math.hypot(m.value - m.lo, z)
    hi = m.value + math.hypot(m.hi - m.value, z)
    return lo, hi, f" (one seed, widened by seed spread {seed_spread:g})"


def exit_status(results: Iterable[tuple[str, str]]) -> int:
    """(role, verdict) pairs -> 1 if any error or any gate not reproduced, else 0."""
    for role, verdict in results:
        if verdict == "error" or (role == "gate" and verdict != "reproduced"):
            return 1
    return 0


@dataclass(frozen=True)
class Calibrated:
    value: float
    spread: float
    halfwidth: float


def calibrate(values: list[float], halfwidths: list[float]) -> Calibrated:
    """Expected value, spread and reachable half-width from >= 3 calibration runs."""
    if len(values) < 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"calibration needs >= 3 finite values, got {values}")
    return Calibrated(value=round(statistics.median(values), 4),
                      spread=round(statistics.stdev(values), 4),
                      halfwidth=round(statistics.median(halfwidths), 4))


def attainability_problems(entry: ExpectedEntry) -> list[str]:
    """Why this entry could only ever be inconclusive, or not be a gate (empty when fine)."""
    problems = []
    if entry.kind == "direction":
        return problems  # a sign test against a margin: no band to be narrower than an interval
    if entry.planned_halfwidth is not None and band(entry) < 1.5 * entry.planned_halfwidth:
        problems.append(f"band {band(entry):.4g} is narrower than 1.5x the reachable interval "
                        f"half-width {entry.planned_halfwidth:.4g}: it could only be inconclusive")
    if entry.kind == "calibrated_effect" and entry.value is None:
        return ["not calibrated yet: run `cliprepro calibrate` and commit its records"]
    if entry.role == "gate" and entry.kind == "calibrated_effect":
        assert entry.value is not None
        effect = abs(entry.value - (entry.null_value or 0.0))
        if entry.calibration_spread is None or effect < 4 * entry.calibration_spread:
            problems.append(f"effect {effect:.4g} is not >= 4x its calibration spread "
                            f"{entry.calibration_spread}: it cannot be a gate")
    if entry.kind in ("at_least", "at_most", "two_sided") and entry.planned_halfwidth is None:
        problems.append("interval-judged entry needs planned_halfwidth (what the planned run reaches)")
    return problems
