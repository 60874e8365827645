"""Unit tests for cliprepro.verdict: the judging table of docs/design.md "Verdicts"."""
from __future__ import annotations

import pytest

from pydantic import TypeAdapter, ValidationError

from cliprepro.claims import ExpectedEntry
from cliprepro.verdict import (
    VERDICTS,
    Calibrated,
    Measured,
    attainability_problems,
    calibrate,
    exit_status,
    judge,
    threshold,
)

NAN, INF = float("nan"), float("inf")

# Values are chosen so every threshold is exact in binary floating point (boundaries are exact).
_KIND_DEFAULTS: dict[str, dict] = {
    "exact": dict(scale="paper", value=10.0, abs_tolerance=0.5),
    "released_weights": dict(scale="paper", value=76.25, published_rounding=0.125,
                             pipeline_allowance=0.125),  # tolerance 0.25
    "at_least": dict(scale="paper", value=2.0, rel_delta=0.25, planned_halfwidth=0.1),  # threshold 1.5
    "at_most": dict(scale="paper", value=2.0, rel_delta=0.25, planned_halfwidth=0.1),  # threshold 2.5
    "two_sided": dict(scale="paper", value=10.0, band_halfwidth=1.0, planned_halfwidth=0.1),  # [9, 11]
    # upward effect: null 1, effect 1, keep half -> threshold 1.5
    "calibrated_effect": dict(scale="proxy", value=2.0, kept_fraction=0.5, null_value=1.0,
                              calibration=["c1", "c2", "c3"], source_kind="calibration"),
    "direction": dict(scale="proxy", margin=1.0),
}
ENTRY = TypeAdapter(ExpectedEntry)


def make_entry(kind: str, **over) -> ExpectedEntry:
    fields = dict(claim="c", metric="m", unit="x", kind=kind, role="finding", source="paper Table 1",
                  source_kind="primary")
    fields.update(_KIND_DEFAULTS[kind])
    fields.update(over)
    return ENTRY.validate_python(fields)


def downward_effect(**over) -> ExpectedEntry:
    """calibrated_effect whose value is below its null: null 1, value 0.5, keep half -> 0.75."""
    return make_entry("calibrated_effect", value=0.5, **over)


def iv(lo: float, hi: float, value: float | None = None) -> Measured:
    return Measured(value=(lo + hi) / 2 if value is None else value, lo=lo, hi=hi, n=9)


ALL_KINDS = sorted(_KIND_DEFAULTS)
INTERVAL_KINDS = ["at_least", "at_most", "two_sided", "calibrated_effect", "direction"]


class TestThreshold:
    @pytest.mark.parametrize(
        ("entry", "expected"),
        [
            (make_entry("at_least"), 1.5),
            (make_entry("at_least", value=4.0, rel_delta=0.0), 4.0),
            (make_entry("at_most"), 2.5),
            (make_entry("at_most", value=4.0, rel_delta=0.0), 4.0),
            (make_entry("calibrated_effect"), 1.5),
            (make_entry("calibrated_effect", kept_fraction=1.0), 2.0),
            (downward_effect(), 0.75),
            (make_entry("calibrated_effect", value=-2.0, null_value=0.0, kept_fraction=0.25), -0.5),
            (make_entry("exact"), None),
            (make_entry("released_weights"), None),
            (make_entry("two_sided"), None),
        ],
    )
    def test_threshold(self, entry, expected):
        got = threshold(entry)
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(expected, abs=1e-12)


class TestJudgeExact:
    @pytest.mark.parametrize("kind", ["exact", "released_weights"])
    @pytest.mark.parametrize(
        ("offset", "verdict", "word"),
        [
            (0.0, "reproduced", "within"),
            (0.1, "reproduced", "within"),
            (-0.1, "reproduced", "within"),
            (1.0, "reproduced", "within"),  # exactly at tolerance (multiplied by the kind's tol)
            (-1.0, "reproduced", "within"),
            (1.2, "not_reproduced", "outside"),
            (-1.2, "not_reproduced", "outside"),
            (40.0, "not_reproduced", "outside"),
        ],
    )
    def test_table(self, kind, offset, verdict, word):
        entry = make_entry(kind)
        got, reason = judge(entry, Measured(value=entry.value + offset * entry.tolerance()))
        assert got == verdict
        assert word in reason
        assert f"tolerance {entry.tolerance():g}" in reason

    @pytest.mark.parametrize(
        ("value", "tolerance", "measured", "verdict"),
        [
            (76.2, 0.01, 76.21, "reproduced"),  # 76.21 - 76.2 is 0.01000000000000512 in floats
            (76.2, 0.01, 76.19, "reproduced"),
            (76.2, 0.01, 76.2101, "not_reproduced"),
            (0.3, 0.0, 0.1 + 0.2, "reproduced"),  # printed precision: equal counts are equal
            (1000.0, 0.0, 1000.0, "reproduced"),
            (1000.0, 0.0, 1001.0, "not_reproduced"),
            (1000.0, 0.0, 999.999, "not_reproduced"),
        ],
    )
    def test_inclusive_at_printed_precision(self, value, tolerance, measured, verdict):
        entry = make_entry("exact", value=value, abs_tolerance=tolerance)
        assert judge(entry, Measured(value=measured))[0] == verdict

    @pytest.mark.parametrize(
        "m",
        [
            Measured(value=10.0),
            Measured(value=10.0, lo=None, hi=None),
            Measured(value=10.0, lo=NAN, hi=INF),  # exact counts do not use the interval
        ],
    )
    def test_exact_needs_no_interval(self, m):
        assert judge(make_entry("exact"), m)[0] == "reproduced"


class TestJudgeAtLeast:
    @pytest.mark.parametrize(
        ("lo", "hi", "verdict", "reason_part"),
        [
            (1.6, 2.4, "reproduced", "lower bound"),
            (1.5, 2.0, "reproduced", ">= threshold 1.5"),  # lo exactly at the threshold
            (1.5, 1.5, "reproduced", ">="),
            (3.0, 9.0, "reproduced", ">="),
            (0.5, 1.4, "not_reproduced", "< threshold 1.5"),
            (1.0, 1.4999, "not_reproduced", "upper bound"),
            (1.4, 1.6, "inconclusive", "straddles"),
            (1.0, 1.5, "inconclusive", "straddles"),  # hi exactly at the threshold
            (1.4999, 1.5, "inconclusive", "straddles"),
        ],
    )
    def test_table(self, lo, hi, verdict, reason_part):
        got, reason = judge(make_entry("at_least"), iv(lo, hi))
        assert got == verdict
        assert reason_part in reason

    def test_point_value_is_not_used(self):
        # the decision is the interval's; a point estimate above the threshold does not rescue it
        assert judge(make_entry("at_least"), iv(1.0, 1.4, value=5.0))[0] == "not_reproduced"
        assert judge(make_entry("at_least"), iv(1.6, 2.0, value=0.0))[0] == "reproduced"


class TestDataBoundSpeed:
    """A speed from a training loop that waited for data more than MAX_DATA_WAIT_FRACTION of its
    time is inconclusive, whatever its interval says."""

    @pytest.mark.parametrize("kind", ["at_least", "calibrated_effect", "exact"])
    @pytest.mark.parametrize("wait,verdict", [(None, "reproduced"), (0.0, "reproduced"),
                                              (0.10, "reproduced"), (0.11, "inconclusive"),
                                              (0.9, "inconclusive")])
    def test_table(self, kind, wait, verdict):
        from dataclasses import replace

        entry = make_entry(kind)
        value = entry.expected_value() if kind == "exact" else 3.0
        m = replace(iv(value, value), data_wait_fraction=wait)
        got, reason = judge(entry, m)
        assert got == verdict, reason
        if verdict == "inconclusive":
            assert "waited for data" in reason

    def test_the_docs_state_the_declared_fraction(self):
        from cliprepro.claims import MAX_DATA_WAIT_FRACTION
        from tests.conftest import REPO

        said = f"more than **{MAX_DATA_WAIT_FRACTION:.0%}** of its time (`MAX_DATA_WAIT_FRACTION`"
        assert said in " ".join((REPO / "docs" / "verdicts.md").read_text().split())


class TestDisturbedTiming:
    """A timed speed whose every sweep was disturbed (runners/timing/timing.py) is inconclusive,
    whatever its interval says."""

    @pytest.mark.parametrize("kind", ["at_least", "calibrated_effect"])
    @pytest.mark.parametrize("disturbed,verdict", [(None, "reproduced"), ("", "reproduced"),
                                                   ("3 of 9 rounds more than 1.2x off", "inconclusive")])
    def test_table(self, kind, disturbed, verdict):
        from dataclasses import replace

        got, reason = judge(make_entry(kind), replace(iv(3.0, 3.0), timing_disturbed=disturbed))
        assert got == verdict, reason
        if verdict == "inconclusive":
            assert reason.startswith("timing disturbed: 3 of 9 rounds more than 1.2x off")


class TestJudgeAtMost:
    @pytest.mark.parametrize(
        ("lo", "hi", "verdict", "reason_part"),
        [
            (1.0, 2.4, "reproduced", "upper bound"),
            (2.0, 2.5, "reproduced", "<= threshold 2.5"),  # hi exactly at the threshold
            (2.5, 2.5, "reproduced", "<="),
            (2.6, 3.0, "not_reproduced", "> threshold 2.5"),
            (2.5001, 3.0, "not_reproduced", "lower bound"),
            (2.4, 2.6, "inconclusive", "straddles"),
            (2.5, 3.0, "inconclusive", "straddles"),  # lo exactly at the threshold
        ],
    )
    def test_table(self, lo, hi, verdict, reason_part):
        got, reason = judge(make_entry("at_most"), iv(lo, hi))
        assert got == verdict
        assert reason_part in reason


class TestJudgeTwoSided:
    @pytest.mark.parametrize(
        ("lo", "hi", "verdict", "reason_part"),
        [
            (9.5, 10.5, "reproduced", "inside [9, 11]"),
            (10.0, 10.0, "reproduced", "inside"),
            (9.0, 11.0, "reproduced", "inside"),  # both edges included
            (9.0, 9.5, "reproduced", "inside"),
            (10.5, 11.0, "reproduced", "inside"),
            (11.5, 12.0, "not_reproduced", "outside"),
            (7.0, 8.9, "not_reproduced", "outside"),
            (11.0001, 12.0, "not_reproduced", "outside"),
            (10.5, 11.5, "inconclusive", "overlaps"),
            (8.5, 9.5, "inconclusive", "overlaps"),
            (8.0, 12.0, "inconclusive", "overlaps"),  # wider than the band on both sides
            (8.0, 9.0, "inconclusive", "overlaps"),  # touches the lower edge
            (11.0, 12.0, "inconclusive", "overlaps"),  # touches the upper edge
        ],
    )
    def test_table(self, lo, hi, verdict, reason_part):
        got, reason = judge(make_entry("two_sided"), iv(lo, hi))
        assert got == verdict
        assert reason_part in reason


class TestJudgeCalibratedEffect:
    @pytest.mark.parametrize(
        ("lo", "hi", "verdict"),
        [
            (1.6, 2.4, "reproduced"),
            (1.5, 2.0, "reproduced"),  # lower bound keeps exactly half the effect
            (0.9, 1.1, "not_reproduced"),  # the no-effect value: what a negative control gives
            (1.0, 1.4, "not_reproduced"),
            (1.4, 1.6, "inconclusive"),
            (1.2, 1.5, "inconclusive"),
        ],
    )
    def test_upward(self, lo, hi, verdict):
        assert judge(make_entry("calibrated_effect"), iv(lo, hi))[0] == verdict

    @pytest.mark.parametrize(
        ("lo", "hi", "verdict"),
        [
            (0.4, 0.7, "reproduced"),
            (0.5, 0.75, "reproduced"),  # upper bound keeps exactly half the effect
            (0.9, 1.1, "not_reproduced"),  # no effect
            (0.8, 0.9, "not_reproduced"),
            (2.0, 3.0, "not_reproduced"),  # effect in the wrong direction
            (0.7, 0.8, "inconclusive"),
            (0.75, 0.9, "inconclusive"),
        ],
    )
    def test_downward(self, lo, hi, verdict):
        assert judge(downward_effect(), iv(lo, hi))[0] == verdict

    @pytest.mark.parametrize(
        ("lo", "hi", "verdict"),
        [
            (-3.0, -1.0, "reproduced"),  # difference effect, null 0, value -2, keep half: -1
            (-0.5, 0.5, "not_reproduced"),
            (-1.5, -0.5, "inconclusive"),
        ],
    )
    def test_downward_difference(self, lo, hi, verdict):
        entry = make_entry("calibrated_effect", value=-2.0, null_value=0.0)
        assert judge(entry, iv(lo, hi))[0] == verdict


class TestJudgeDirection:
    """The paper's direction beyond a pre-registered margin (1 here); strict at the margin."""

    @pytest.mark.parametrize("lo,hi,verdict", [
        (1.5, 3.0, "reproduced"),
        (1.0, 3.0, "inconclusive"),   # touching the margin is not beyond it
        (0.5, 3.0, "inconclusive"),
        (-2.0, 0.5, "not_reproduced"),
        (-2.0, 1.0, "inconclusive"),
    ])
    def test_table(self, lo, hi, verdict):
        assert judge(make_entry("direction"), iv(lo, hi))[0] == verdict

    def test_no_band_problem(self):
        assert attainability_problems(make_entry("direction", margin=0.0)) == []

    def test_threshold_is_the_margin(self):
        assert threshold(make_entry("direction", margin=2.5)) == 2.5


class TestJudgeErrors:
    @pytest.mark.parametrize("kind", ALL_KINDS)
    @pytest.mark.parametrize(
        "m",
        [
            None,
            Measured(value=None),
            Measured(value=None, lo=1.0, hi=2.0),
            Measured(value=NAN, lo=1.0, hi=2.0),
            Measured(value=INF, lo=1.0, hi=2.0),
            Measured(value=-INF, lo=1.0, hi=2.0),
        ],
        ids=["none", "value-none", "value-none-with-interval", "nan", "inf", "-inf"],
    )
    def test_missing_or_non_finite_value_is_error(self, kind, m):
        verdict, reason = judge(make_entry(kind), m)
        assert verdict == "error"
        assert "'m'" in reason  # names the metric

    @pytest.mark.parametrize("kind", INTERVAL_KINDS)
    @pytest.mark.parametrize(
        ("lo", "hi"),
        [(None, None), (None, 2.0), (1.0, None), (NAN, 2.0), (1.0, NAN), (-INF, 2.0), (1.0, INF)],
    )
    def test_interval_kinds_need_a_finite_interval(self, kind, lo, hi):
        entry = make_entry(kind)
        verdict, reason = judge(entry, Measured(value=entry.expected_value(), lo=lo, hi=hi))
        assert verdict == "error"
        assert "needs an interval" in reason

    @pytest.mark.parametrize("kind", ALL_KINDS)
    @pytest.mark.parametrize("value", [None, NAN, INF, -INF])
    def test_missing_measurement_is_never_reproduced(self, kind, value):
        entry = make_entry(kind)
        at = entry.expected_value() + (1 if kind == "direction" else 0)  # direction: strictly beyond the margin
        point = Measured(value=at, lo=at, hi=at)
        assert judge(entry, point)[0] == "reproduced"  # the same interval with a value passes
        verdict, _ = judge(entry, Measured(value=value, lo=at, hi=at))
        assert verdict == "error"

    @pytest.mark.parametrize("kind", ALL_KINDS)
    def test_every_verdict_is_known(self, kind):
        entry = make_entry(kind)
        v = entry.expected_value()
        for m in (None, Measured(value=v, lo=v, hi=v)):
            assert judge(entry, m)[0] in VERDICTS


class TestUncalibrated:
    """A calibrated_effect with neither value nor calibration ids: written, not yet calibrated."""

    @staticmethod
    def entry(**over) -> ExpectedEntry:
        return make_entry("calibrated_effect", value=None, calibration=[], **over)

    @pytest.mark.parametrize(
        "m",
        [None, Measured(value=2.0, lo=1.9, hi=2.1), Measured(value=1.0, lo=0.9, hi=1.1)],
    )
    def test_judged_as_error(self, m):
        verdict, reason = judge(self.entry(), m)
        assert verdict == "error"
        assert "not calibrated yet" in reason

    def test_no_threshold(self):
        assert threshold(self.entry()) is None

    @pytest.mark.parametrize(
        "over",
        [{}, dict(role="gate", negative_control="off"), dict(planned_halfwidth=5.0)],
    )
    def test_attainability_says_calibrate(self, over):
        problems = attainability_problems(self.entry(**over))
        assert len(problems) == 1
        assert "not calibrated yet" in problems[0]


class TestExitStatus:
    @pytest.mark.parametrize(
        ("results", "expected"),
        [
            ([], 0),
            ([("gate", "reproduced")], 0),
            ([("finding", "reproduced")], 0),
            ([("finding", "not_reproduced")], 0),  # findings are reported, never fail a run
            ([("finding", "inconclusive")], 0),
            ([("finding", "skipped")], 0),
            ([("finding", "error")], 1),
            ([("gate", "error")], 1),
            ([("gate", "not_reproduced")], 1),
            ([("gate", "inconclusive")], 1),
            ([("gate", "skipped")], 1),
            ([("gate", "reproduced"), ("finding", "not_reproduced"), ("finding", "inconclusive")], 0),
            ([("gate", "reproduced"), ("finding", "error")], 1),
            ([("finding", "not_reproduced"), ("gate", "reproduced"), ("gate", "inconclusive")], 1),
        ],
    )
    def test_table(self, results, expected):
        assert exit_status(results) == expected

    def test_accepts_a_generator(self):
        assert exit_status(r for r in [("finding", "reproduced"), ("gate", "skipped")]) == 1
        assert exit_status(r for r in [("finding", "not_reproduced")]) == 0


class TestCalibrate:
    @pytest.mark.parametrize(
        ("values", "halfwidths", "expected"),
        [
            ([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], Calibrated(2.0, 1.0, 0.2, 1)),
            ([3.0, 1.0, 2.0], [0.3, 0.1, 0.2], Calibrated(2.0, 1.0, 0.2, 1)),
            ([1.5, 1.5, 1.5], [0.05, 0.05, 0.05], Calibrated(1.5, 0.0, 0.05, 1)),
            ([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4], Calibrated(2.5, 1.291, 0.25, 1)),
            ([1.000011, 1.000022, 1.000033], [0.123456, 0.1, 0.2], Calibrated(1.0, 0.0, 0.1235, 1)),
        ],
    )
    def test_values(self, values, halfwidths, expected):
        got = calibrate(values, halfwidths)
        assert got.value == pytest.approx(expected.value, abs=1e-12)
        assert got.spread == pytest.approx(expected.spread, abs=1e-12)
        assert got.halfwidth == pytest.approx(expected.halfwidth, abs=1e-12)

    @pytest.mark.parametrize(
        "values",
        [
            [],
            [1.0],
            [1.0, 2.0],
            [1.0, 2.0, NAN],
            [1.0, 2.0, INF],
            [-INF, 1.0, 2.0, 3.0],
        ],
    )
    def test_needs_three_finite_values(self, values):
        with pytest.raises(ValueError, match=">= 3 finite"):
            calibrate(values, [0.1] * max(len(values), 3))


class TestAttainability:
    @pytest.mark.parametrize(
        ("entry", "flagged"),
        [
            # two_sided band 1.0: flagged when 1.0 < 1.5 * planned_halfwidth
            (make_entry("two_sided", planned_halfwidth=0.5), False),
            (make_entry("two_sided", planned_halfwidth=0.625), False),
            (make_entry("two_sided", band_halfwidth=0.75, planned_halfwidth=0.5), False),  # == 1.5x
            (make_entry("two_sided", band_halfwidth=0.75, planned_halfwidth=0.5001), True),
            (make_entry("two_sided", planned_halfwidth=0.6875), True),
            (make_entry("two_sided", planned_halfwidth=2.0), True),
            # at_least band 0.5
            (make_entry("at_least", planned_halfwidth=0.25), False),
            (make_entry("at_least", planned_halfwidth=0.5), True),
            # calibrated_effect band 0.5 (half the effect)
            (make_entry("calibrated_effect", planned_halfwidth=0.25), False),
            (make_entry("calibrated_effect", planned_halfwidth=0.375), True),
            # exact: no interval, nothing to check
            (make_entry("exact"), False),
        ],
    )
    def test_band_narrower_than_reachable_interval(self, entry, flagged):
        problems = attainability_problems(entry)
        assert any("narrower than 1.5x" in p for p in problems) == flagged
        if not flagged:
            assert problems == []

    @pytest.mark.parametrize(
        ("over", "flagged"),
        [
            (dict(calibration_spread=0.2), False),  # effect 1.0 >= 4 x 0.2
            (dict(calibration_spread=0.25), False),  # effect exactly 4x its spread
            (dict(calibration_spread=0.3), True),
            (dict(calibration_spread=None), True),  # no spread known: cannot be a gate
            (dict(value=0.5, calibration_spread=0.125), False),  # downward effect 0.5 = 4 x 0.125
            (dict(value=0.5, calibration_spread=0.2), True),
        ],
    )
    def test_gate_effect_against_spread(self, over, flagged):
        entry = make_entry("calibrated_effect", role="gate", negative_control="off",
                           planned_halfwidth=0.01, **over)
        problems = attainability_problems(entry)
        assert any("cannot be a gate" in p for p in problems) == flagged
        assert len(problems) == int(flagged)

    def test_small_effect_finding_is_fine(self):
        entry = make_entry("calibrated_effect", calibration_spread=10.0, planned_halfwidth=0.01)
        assert attainability_problems(entry) == []

    @pytest.mark.parametrize("kind", ["at_least", "at_most", "two_sided"])
    def test_interval_kinds_need_planned_halfwidth(self, kind):
        fields = {k: v for k, v in _KIND_DEFAULTS[kind].items() if k != "planned_halfwidth"}
        with pytest.raises(ValidationError, match="planned_halfwidth"):
            ENTRY.validate_python(dict(claim="c", metric="m", unit="x", kind=kind, role="finding",
                                       source="s", source_kind="primary", **fields))

    def test_zero_spread_is_not_a_calibrated_effect(self):
        """A deterministic metric (spread 0) is an exact gate; the 4x rule would be vacuous."""
        entry = make_entry("calibrated_effect", role="gate", negative_control="off",
                           calibration_spread=0.0, planned_halfwidth=0.01)
        assert any("exact gate" in p for p in attainability_problems(entry))

    def test_problems_accumulate(self):  # the band first, then the gate rule
        entry = make_entry("calibrated_effect", role="gate", negative_control="off",
                           calibration_spread=1.0, planned_halfwidth=1.0)
        problems = attainability_problems(entry)
        assert len(problems) == 2
        assert "narrower" in problems[0] and "cannot be a gate" in problems[1]


def test_helpers_are_exact():
    """Guard the fixture arithmetic the boundary rows rely on."""
    assert threshold(make_entry("at_least")) == 1.5
    assert threshold(make_entry("at_most")) == 2.5
    assert threshold(make_entry("calibrated_effect")) == 1.5
    assert threshold(downward_effect()) == 0.75


class TestSeedRule:
    """Over seeds, the interval is widened by the seed spread (cliprepro.intervals), for every kind."""

    @staticmethod
    def seeds(value, n, eval_se, samples=()):
        return Measured(value=value, lo=value - 1.96 * eval_se, hi=value + 1.96 * eval_se, n=n,
                        over="seeds", eval_se=eval_se, samples=tuple(samples))

    @pytest.mark.parametrize("kind", ["direction", "calibrated_effect", "two_sided"])
    def test_one_seed_without_spread_is_inconclusive(self, kind):
        entry = make_entry(kind)
        verdict, reason = judge(entry, self.seeds(entry.expected_value() + 50, 1, 0.01))
        assert verdict == "inconclusive" and "no seed spread known" in reason

    @pytest.mark.parametrize("n,sd,df,value,verdict", [
        (1, 1.0, 20, 4.0, "reproduced"),       # 4 - 2.086 * hypot(1, 0.1) = 1.90 > margin 1
        (1, 1.0, 20, 3.0, "inconclusive"),     # 0.90 < 1
        (1, 1.0, 2, 4.0, "inconclusive"),      # t(2) = 4.30: 4 - 4.33 < 1
        (4, 1.0, 2, 4.0, "reproduced"),        # more seeds: 4 - 4.30 * hypot(0.5, 0.1) = 1.81
        (1, 1.0, 20, -2.0, "not_reproduced"),  # -2 + 2.13 < 1
    ])
    def test_table(self, n, sd, df, value, verdict):
        entry = make_entry("direction", seed_spread=dict(sd=sd, df=df, source="test"))
        got, reason = judge(entry, self.seeds(value, n, 0.1))
        assert got == verdict
        assert f"seed spread {sd:.3g} (df {df})" in reason

    def test_the_runs_own_seeds_are_pooled(self):
        """A seed that failed in this run widens its own interval."""
        entry = make_entry("direction", seed_spread=dict(sd=1.0, df=4, source="test"))
        calm = judge(entry, self.seeds(4.0, 3, 0.1, samples=(4.0, 4.1, 3.9)))
        failed = judge(entry, self.seeds(4.0, 3, 0.1, samples=(6.0, 6.0, 0.0)))
        assert calm[0] == "reproduced" and "df 6" in calm[1]
        assert failed[0] == "inconclusive"

    def test_declared_spread_without_df_is_taken_as_known(self):
        entry = make_entry("direction", seed_spread=dict(sd=1.0, source="declared"))
        assert "(declared)" in judge(entry, self.seeds(4.0, 1, 0.1))[1]

    def test_rounds_are_judged_as_measured(self):
        entry = make_entry("calibrated_effect")
        m = Measured(value=2.0, lo=1.6, hi=2.4, n=9, over="rounds")
        verdict, reason = judge(entry, m)
        assert verdict == "reproduced" and "order-statistic" in reason
