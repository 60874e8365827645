"""cliprepro.intervals: the interval over seeds and the pass probability of a gate."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cliprepro.intervals import (
    pooled_sd,
    ControlModel,
    PassProbability,
    best_kept_fraction,
    pass_probability_runs,
    pass_probability_seeds,
    pooled_spread,
    run_pass_probability,
    sd_upper,
    seed_interval,
    t_quantile,
)


class TestQuantiles:
    @pytest.mark.parametrize("df,q", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (20, 2.0860), (math.inf, 1.9600)])
    def test_t(self, df, q):
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)

    @pytest.mark.parametrize("df,ratio", [(4, 2.3724), (9, 1.6449), (20, 1.3576)])
    def test_sd_upper_is_the_chi_square_bound(self, df, ratio):
        assert sd_upper(2.0, df) == pytest.approx(2.0 * ratio, abs=1e-3)

    def test_declared_spread_is_taken_as_known(self):
        assert sd_upper(2.0, math.inf) == 2.0


class TestSeedInterval:
    def test_no_spread_and_one_seed_is_unbounded(self):
        iv = seed_interval(3.0, 1, 0.5, None, None, [3.0])
        assert (iv.lo, iv.hi, iv.df) == (-math.inf, math.inf, 0.0) and "no interval covers" in iv.rule

    def test_two_seeds_without_calibration_use_their_own_spread(self):
        iv = seed_interval(3.0, 2, 0.0, None, None, [2.0, 4.0])
        assert iv.df == 1 and iv.sd == pytest.approx(math.sqrt(2))
        assert iv.hi - 3.0 == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), abs=1e-3)

    def test_pooling_adds_degrees_of_freedom(self):
        assert pooled_spread(2.0, 4, [1.0, 1.0, 1.0]) == pytest.approx((math.sqrt(16 / 6), 6.0))
        assert pooled_spread(2.0, None, [0.0, 10.0]) == (2.0, math.inf)  # declared: not pooled

    @pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
    def test_more_seeds_narrower(self, n):
        wide = seed_interval(0.0, n, 0.1, 1.0, 10, [])
        narrow = seed_interval(0.0, n + 1, 0.1, 1.0, 10, [])
        assert narrow.hi - narrow.lo < wide.hi - wide.lo


class TestPassProbability:
    def test_far_from_the_threshold_passes_and_its_control_fails(self):
        p = pass_probability_seeds(effect=24.0, null=0.0, threshold=12.0, n=10, sd=1.0, df=50, eval_se=0.5)
        assert p.honest_pass > 0.999 and p.control_fails > 0.999

    def test_at_the_threshold_it_is_a_coin_or_worse(self):
        p = pass_probability_runs(effect=1.5, null=1.0, threshold=1.5, run_sd=0.1, runs=5, lower_half=0.0,
                                  upper_half=0.0)
        assert p.honest_pass == pytest.approx(0.5)

    @pytest.mark.parametrize("runs", [3, 5, 10, 50])
    def test_fewer_calibration_runs_lower_probability(self, runs):
        few = pass_probability_runs(2.0, 1.0, 1.5, 0.15, runs, 0.1, 0.1)
        more = pass_probability_runs(2.0, 1.0, 1.5, 0.15, runs + 1, 0.1, 0.1)
        assert few.honest_pass < more.honest_pass

    def test_downward_effect(self):
        p = pass_probability_runs(effect=0.5, null=1.0, threshold=0.75, run_sd=0.01, runs=5, lower_half=0.01,
                                  upper_half=0.01, upward=False)
        assert p.honest_pass > 0.999 and p.control_fails > 0.999

    @pytest.mark.parametrize("upward, effect, null, thr, passes, control_fails", [
        # asymmetric halves (lower 0.05, upper 0.4), no run-to-run spread: the decision is the judge's
        (True, 1.0, 0.5, 0.9, True, False),    # pass: 1.0 - 0.05 >= 0.9; control: 0.5 + 0.4 = 0.9, not < 0.9
        (True, 1.0, 0.4, 0.96, False, True),   # 1.0 - 0.05 < 0.96; control 0.4 + 0.4 < 0.96
        (False, 0.5, 1.0, 0.8, False, True),   # downward: 0.5 + 0.4 > 0.8 fails to pass; 1.0 - 0.05 > 0.8
        (False, 0.3, 0.84, 0.8, True, False),  # 0.3 + 0.4 <= 0.8; control 0.84 - 0.05 is not > 0.8
    ])
    def test_each_direction_reads_the_bound_the_judge_reads(self, upward, effect, null, thr, passes, control_fails):
        p = pass_probability_runs(effect, null, thr, 0.0, 5, lower_half=0.05, upper_half=0.4, upward=upward)
        assert (p.honest_pass, p.control_fails) == (float(passes), float(control_fails))

    def test_zero_spread_is_certain(self):
        p = pass_probability_runs(2.0, 1.0, 1.5, 0.0, 5, 0.1, 0.1)
        assert (p.honest_pass, p.control_fails) == (1.0, 1.0)

    def test_matches_a_simulated_rerun(self):
        """With the true spread equal to its upper bound, the computed P(pass) is what reruns give."""
        rng = np.random.default_rng(0)
        effect, thr, sd, df, n, se = 20.0, 12.0, 5.0, 8, 3, 1.0
        p = pass_probability_seeds(effect, 0.0, thr, n, sd, df, se)
        sd_true = sd_upper(sd, df)
        values = effect + math.sqrt(sd_true ** 2 / n + se ** 2) * rng.standard_normal(20000)
        half = t_quantile(0.975, df) * math.sqrt(sd ** 2 / n + se ** 2)
        assert np.mean(values - half >= thr) == pytest.approx(p.honest_pass, abs=0.01)

    def test_a_deterministic_control_fails_for_sure_above_its_reach(self):
        """A control whose calibration run measured exactly 0 on every seed (a fine-tune of 0 epochs)
        fails whenever the threshold is above its interval's reach; below it, never."""
        control = ControlModel(value=0.0, sd=0.0, eval_se=0.0)
        high = pass_probability_seeds(20.0, 0.0, 9.0, 3, 4.5, 8, 1.0, control=control)
        low = pass_probability_seeds(20.0, 0.0, 1.0, 3, 4.5, 8, 1.0, control=control)
        assert high.control_fails == 1.0 and low.control_fails == 0.0 and "deterministic" in high.how
        # without the control's calibration it is taken as noisy as the effect: lower
        assert pass_probability_seeds(20.0, 0.0, 9.0, 3, 4.5, 8, 1.0).control_fails < 0.95

    def test_a_control_simulated(self):
        """P(control fails) with a noisy control matches reruns drawn with its spread's upper bound."""
        rng = np.random.default_rng(1)
        sd, df, n, se, thr = 4.0, 10, 3, 0.5, 8.0
        control = ControlModel(value=1.0, sd=3.0, eval_se=0.4)
        p = pass_probability_seeds(20.0, 0.0, thr, n, sd, df, se, control=control)
        c_sd_u = sd_upper(3.0, n - 1)
        values = 1.0 + math.sqrt(c_sd_u ** 2 / n + 0.4 ** 2) * rng.standard_normal(20000)
        c_sd = math.sqrt((df * sd ** 2 + (n - 1) * 3.0 ** 2) / (df + n - 1))
        half = t_quantile(0.975, df + n - 1) * math.sqrt(c_sd ** 2 / n + 0.4 ** 2)
        assert np.mean(values + half < thr) == pytest.approx(p.control_fails, abs=0.01)

    @pytest.mark.parametrize("effect", [1.3, 3.0, 6.0])
    def test_ratios_vary_in_proportion(self, effect):
        """A ratio gate's noise is multiplicative: the control near 1 varies by the same fraction of
        itself as the effect does, so its P(fail) is computed on the log scale."""
        thr = math.sqrt(effect)  # the geometric midpoint
        rel = pass_probability_runs(effect, 1.0, thr, 0.03 * effect, 20, 0.0, 0.0, ratio=True)
        assert rel.honest_pass == pytest.approx(rel.control_fails, abs=1e-9)  # symmetric on the log scale
        rng = np.random.default_rng(2)
        sd_u = sd_upper(0.03 * effect, 19) / effect
        control = np.exp(sd_u * rng.standard_normal(20000))
        assert np.mean(control < thr) == pytest.approx(rel.control_fails, abs=0.01)
        absolute = pass_probability_runs(effect, 1.0, thr, 0.03 * effect, 20, 0.0, 0.0)
        assert absolute.control_fails <= rel.control_fails + 1e-12

    def test_the_best_kept_fraction_balances_the_two(self):
        calls = []

        def probability(kept: float):
            calls.append(kept)
            return PassProbability(1 - kept, kept, "", honest_z=0.5 - kept, control_z=kept - 0.5)
        kept, p = best_kept_fraction(probability)
        assert kept == 0.5 and p.honest_pass == p.control_fails == 0.5
        assert min(calls) == 0.01 and max(calls) == 0.99

    def test_where_both_round_to_one_the_margins_decide(self):
        """Far-apart effect and control: P is 1.0 at many thresholds; the chosen one sits where the
        smaller margin is largest (the log-scale midpoint for a ratio), not at the first 1.0."""
        kept, p = best_kept_fraction(lambda k: pass_probability_runs(4.0, 1.0, 1 + 3 * k, 0.004, 20, 0.0, 0.0,
                                                                      ratio=True))
        assert p.honest_pass == p.control_fails == 1.0
        assert 1 + 3 * kept == pytest.approx(2.0, abs=0.031)  # sqrt(4): the geometric midpoint

    def test_a_deterministic_control_puts_the_threshold_just_past_its_reach(self):
        """Over seeds with a control that measures exactly 0: the threshold goes to the first grid
        point where the control surely fails, where the honest run's margin is largest."""
        control = ControlModel(0.0)
        kept, p = best_kept_fraction(lambda k: pass_probability_seeds(27.0, 0.0, 27.0 * k, 3, 3.1, 8, 1.07,
                                                                       control=control))
        reach = pass_probability_seeds(27.0, 0.0, 27.0 * (kept - 0.01), 3, 3.1, 8, 1.07, control=control)
        assert p.control_fails == 1.0 and reach.control_fails == 0.0 and p.honest_pass > 0.999

    def test_deterministic_plateau_takes_its_middle(self):
        kept, _ = best_kept_fraction(lambda k: pass_probability_runs(2.0, 1.0, 1 + k, 0.0, 5, 0.1, 0.1))
        assert kept == pytest.approx(0.5, abs=0.01)

    def test_whole_run_is_the_product(self):
        assert run_pass_probability([0.9, 0.5, 1.0]) == pytest.approx(0.45)
        assert run_pass_probability([]) == 1.0


class TestPooledSd:
    @pytest.mark.parametrize("groups,sd,df", [
        ([[1.0, 3.0]], math.sqrt(2.0), 1),
        ([[1.0, 3.0], [10.0, 10.0, 10.0]], math.sqrt(2.0 / 3), 3),  # each about its own mean
        ([[0.0, 2.0, 4.0], [5.0, 7.0, 9.0]], 2.0, 4),
        ([[1.0], [2.0, 4.0]], math.sqrt(2.0), 1),  # a single value adds nothing
        ([[1.0]], None, 0),
    ])
    def test_table(self, groups, sd, df):
        got_sd, got_df = pooled_sd(groups)
        assert got_df == df
        assert got_sd == (pytest.approx(sd) if sd is not None else None)
