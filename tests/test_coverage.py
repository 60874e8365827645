"""The interval over seeds covers at its stated level, calibration included (fast, closed form).

`python -m cliprepro.coverage --examples` runs the same with 500 Bernoulli examples per seed."""
from __future__ import annotations

import pytest

from cliprepro.coverage import SCENARIOS, coverage

LEVEL = 0.93  # the nominal 95% interval, less Monte Carlo error (1000 runs: s.e. ~0.007)
CELLS = [(s, k, n) for s in SCENARIOS for k in (3, 5) for n in (1, 2, 3, 5)]


class TestSeedRuleCovers:
    @pytest.mark.parametrize("scenario,k,n", CELLS, ids=[f"{s.name}-k{k}-n{n}" for s, k, n in CELLS])
    def test_covers(self, scenario, k, n):
        assert coverage("seed_rule", scenario, k, n, sims=1000, seed=n + 10 * k) >= LEVEL


class TestSchema1RuleFails:
    """The same check pointed at schema 1's rule fails: the simulation can tell."""

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
    def test_one_seed_does_not_cover(self, scenario):
        assert coverage("schema1_rule", scenario, 5, 1, sims=1000) < LEVEL

    def test_two_seeds_of_clipa_l16_do_not_cover(self):
        assert coverage("schema1_rule", SCENARIOS[0], 5, 2, sims=1000) < LEVEL
