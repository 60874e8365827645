"""Pooling one claim's measurements over records: by what n counts, never by verdicts."""
from __future__ import annotations

import math
import statistics

import pytest

from cliprepro.pooling import pool_metrics
from cliprepro.record import Metric


def rounds(*xs: float) -> Metric:
    return Metric(value=statistics.median(xs), lo=min(xs), hi=max(xs), n=len(xs), unit="x", samples=list(xs),
                  over="rounds")


def seeds(*xs: float, se: float = 0.5) -> Metric:
    v = sum(xs) / len(xs)
    return Metric(value=v, lo=v - 1, hi=v + 1, n=len(xs), unit="pp", samples=list(xs), over="seeds", eval_se=se)


def exact(v: float) -> Metric:
    return Metric(value=v, lo=v, hi=v, n=1, unit="M", over="exact")


class TestPoolMetrics:
    def test_one_record_is_itself(self):
        m = rounds(1.0, 2.0, 3.0)
        assert pool_metrics({"a": m}).metric is m

    def test_nothing_measured(self):
        got = pool_metrics({"a": Metric(value=None)})
        assert (got.metric, got.records, got.why) == (None, 0, "no record measured it")

    def test_rounds_concatenate_and_take_the_median_of_all(self):
        got = pool_metrics({"a": rounds(1.0, 1.1, 1.2), "b": rounds(2.0, 2.1, 2.2, 2.3)})
        assert got.records == 2 and got.metric.n == 7 and got.metric.over == "rounds"
        assert got.metric.value == 2.0  # median of the 7 rounds, not the median of two medians (1.65)

    def test_a_disturbed_timing_joins_no_pool_of_undisturbed_ones(self):
        disturbed = rounds(1.0, 1.1, 1.2).model_copy(update={"timing_disturbed": "3 of 9 rounds"})
        got = pool_metrics({"a": disturbed, "b": rounds(2.0, 2.1, 2.2), "c": rounds(2.3)})
        assert (got.records, got.metric.n, got.metric.timing_disturbed) == (2, 4, None)
        assert got.why == "left out 1 record(s) whose timing was disturbed"
        alone = pool_metrics({"a": disturbed, "b": disturbed.model_copy(update={"timing_disturbed": "2 of 9 rounds"})})
        assert (alone.records, alone.metric.timing_disturbed, alone.why) == (2, "3 of 9 rounds; 2 of 9 rounds", "")

    def test_seeds_concatenate_mean_and_se_of_the_mean(self):
        got = pool_metrics({"a": seeds(1.0, 3.0, se=0.4), "b": seeds(5.0, se=0.3)})
        assert got.metric.n == 3 and got.metric.value == pytest.approx(3.0)
        assert got.metric.eval_se == pytest.approx(math.sqrt((2 * 0.4) ** 2 + 0.3 ** 2) / 3, abs=1e-6)

    @pytest.mark.parametrize("values,ok", [([100.0, 100.0], True), ([100.0, 101.0], False)])
    def test_exact_counts_pool_only_when_they_agree(self, values, ok):
        got = pool_metrics({f"r{i}": exact(v) for i, v in enumerate(values)})
        assert (got.metric is not None) == ok
        assert ok or "disagree" in got.why

    @pytest.mark.parametrize("a,b,word", [
        (rounds(1.0, 2.0), seeds(1.0, 2.0), "differently"),
        (Metric(value=1.0, over="rounds", n=3), Metric(value=2.0, over="rounds", n=3), "do not pool"),
    ])
    def test_what_cannot_pool_says_why(self, a, b, word):
        got = pool_metrics({"a": a, "b": b})
        assert got.metric is None and got.records == 2 and word in got.why
