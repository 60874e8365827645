"""Unit tests for cliprepro.stats: the order-statistic interval of a median."""
from __future__ import annotations

import math
import random

import pytest

from cliprepro.stats import _binom_cdf, median_interval


def _coverage(k: int, n: int) -> float:
    """Exact coverage of [x_(k), x_(n-k+1)] for the median: 1 - 2 P(Binomial(n, 1/2) <= k-1)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


class TestBinomCdf:
    @pytest.mark.parametrize(
        ("k", "n", "expected"),
        [
            (0, 1, 0.5),
            (1, 1, 1.0),
            (0, 2, 0.25),
            (1, 2, 0.75),
            (0, 9, 1 / 512),
            (1, 9, 10 / 512),
            (2, 9, 46 / 512),
            (4, 9, 0.5),  # symmetric: half the mass is at or below 4 of 9
            (9, 9, 1.0),
        ],
    )
    def test_values(self, k, n, expected):
        assert _binom_cdf(k, n) == pytest.approx(expected, abs=1e-15)


class TestMedianInterval:
    @pytest.mark.parametrize(
        ("n", "lo_rank", "hi_rank", "achieved"),
        [
            # too few values for 95%: the interval is [min, max] and says what it reaches
            (1, 1, 1, 0.0),
            (2, 1, 2, 0.5),
            (3, 1, 3, 0.75),
            (5, 1, 5, 0.9375),
            (6, 1, 6, 0.96875),
            (8, 1, 8, 0.9921875),
            (9, 2, 8, 0.9609375),
            (10, 2, 9, 0.978515625),
            (20, 6, 15, 0.9586105346679688),
            (100, 40, 61, 0.9647997997822952),  # the textbook ranks for n = 100
        ],
    )
    def test_ranks_and_achieved_confidence(self, n, lo_rank, hi_rank, achieved):
        xs = [float(i) for i in range(1, n + 1)]  # value == rank
        med, lo, hi, conf = median_interval(xs)
        assert (lo, hi) == (float(lo_rank), float(hi_rank))
        assert conf == pytest.approx(achieved, abs=1e-12)
        assert conf == pytest.approx(_coverage(lo_rank, n), abs=1e-12)
        assert med == pytest.approx((n + 1) / 2)

    @pytest.mark.parametrize("n", [6, 7, 9, 10, 15, 20, 33, 50, 100])
    @pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99])
    def test_rank_is_the_tightest_that_still_covers(self, n, confidence):
        xs = [float(i) for i in range(1, n + 1)]
        _, lo, hi, conf = median_interval(xs, confidence=confidence)
        k = int(lo)
        assert hi == n - k + 1  # symmetric ranks
        assert 1 <= k <= n // 2
        assert conf == pytest.approx(_coverage(k, n), abs=1e-12)
        if k > 1:  # k found by the search: reaches the confidence ...
            assert conf >= confidence
        if k + 1 <= n // 2:  # ... and one rank further in would not
            assert _coverage(k + 1, n) < confidence

    @pytest.mark.parametrize(
        ("xs", "expected"),
        [
            ([5, 1, 9, 3, 7, 2, 8, 4, 6], (5, 2, 8, 0.9609375)),
            ([9, 8, 7, 6, 5, 4, 3, 2, 1], (5, 2, 8, 0.9609375)),
            ([3.0, -1.0], (1.0, -1.0, 3.0, 0.5)),
            ([4.0, 4.0, 4.0, 4.0, 4.0], (4.0, 4.0, 4.0, 0.9375)),
            ([0.3, 0.1, 0.2], (0.2, 0.1, 0.3, 0.75)),
            ([7.5], (7.5, 7.5, 7.5, 0.0)),
        ],
    )
    def test_unsorted_and_tied_input(self, xs, expected):
        med, lo, hi, conf = median_interval(xs)
        assert (med, lo, hi) == expected[:3]
        assert conf == pytest.approx(expected[3], abs=1e-12)

    def test_order_of_input_does_not_matter(self):
        rng = random.Random(7)
        xs = [rng.gauss(0, 1) for _ in range(20)]
        shuffled = list(xs)
        random.Random(11).shuffle(shuffled)
        assert shuffled != xs
        assert median_interval(shuffled) == median_interval(sorted(xs))

    def test_input_is_not_mutated(self):
        xs = [3.0, 1.0, 2.0, 5.0, 4.0, 0.0]
        median_interval(xs)
        assert xs == [3.0, 1.0, 2.0, 5.0, 4.0, 0.0]

    @pytest.mark.parametrize("n", [1, 2, 5, 6, 9, 20, 41])
    def test_interval_contains_median(self, n):
        rng = random.Random(n)
        xs = [rng.uniform(-10, 10) for _ in range(n)]
        med, lo, hi, _ = median_interval(xs)
        assert min(xs) <= lo <= med <= hi <= max(xs)

    @pytest.mark.parametrize(
        ("confidence", "lo", "hi", "achieved"),
        [
            (0.99, 1, 9, 0.99609375),  # stricter: falls back to [min, max]
            (0.9609375, 2, 8, 0.9609375),  # reaching the confidence exactly is enough
            (0.9609376, 1, 9, 0.99609375),
            (0.95, 2, 8, 0.9609375),
            (0.8, 3, 7, 0.8203125),
            (0.5, 3, 7, 0.8203125),  # ranks 4..6 would reach only 0.4921875
            (0.4, 4, 6, 0.4921875),
            (0.0, 4, 6, 0.4921875),  # never narrower than the ranks around the median
        ],
    )
    def test_confidence_argument(self, confidence, lo, hi, achieved):
        _, got_lo, got_hi, conf = median_interval(list(range(1, 10)), confidence=confidence)
        assert (got_lo, got_hi) == (lo, hi)
        assert conf == pytest.approx(achieved, abs=1e-12)

    @pytest.mark.parametrize("empty", [[], ()])
    def test_empty_raises_value_error(self, empty):
        with pytest.raises(ValueError, match="no values"):
            median_interval(empty)

