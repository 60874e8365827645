"""Distribution-free intervals: the order-statistic interval of a median (pure, no numpy)."""
from __future__ import annotations

import math
from statistics import median


def _binom_cdf(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def interval_rank(n: int, confidence: float = 0.95) -> int:
    """k of the order-statistic interval [x_(k), x_(n-k+1)] of n values: the largest rank whose
    interval still covers the median with at least `confidence` (1, i.e. [min, max], when n is too
    small for that: n < 6 at 95%)."""
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _binom_cdf(k, n) >= confidence:
        k += 1  # rank k+1 still covers: P(B <= k) is the tail below x_(k+1)
    return k


def median_interval(xs: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Median of xs and the order-statistic interval [x_(k), x_(n-k+1)] around it (interval_rank).
    Returns (median, lo, hi, achieved_confidence)."""
    if not xs:
        raise ValueError("median_interval of no values")
    s = sorted(xs)
    n = len(s)
    k = interval_rank(n, confidence)
    achieved = 1 - 2 * _binom_cdf(k - 1, n)
    return median(s), s[k - 1], s[n - k], achieved
