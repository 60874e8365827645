"""Model soups: averaging, refusal of other architectures, the greedy rule, the paired test."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from runners.model.soup import SoupError, greedy_soup, paired, uniform_soup


def sd(w: float, b: float = 0.0, steps: int = 7) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), w), "b": torch.tensor([b]), "steps": torch.tensor(steps)}


class TestUniformSoup:
    def test_floats_are_averaged_integer_buffers_kept(self):
        soup = uniform_soup({"a": sd(1.0, 2.0), "b": sd(3.0, 4.0), "c": sd(5.0, 0.0)})
        assert torch.equal(soup["w"], torch.full((2, 2), 3.0)) and torch.allclose(soup["b"], torch.tensor([2.0]))
        assert soup["steps"].item() == 7 and soup["steps"].dtype == torch.int64

    def test_dtype_kept_and_mean_taken_in_float64(self):
        a = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
        b = {"w": torch.tensor([2.0, 3.0], dtype=torch.bfloat16)}
        assert uniform_soup({"a": a, "b": b})["w"].dtype == torch.bfloat16

    @pytest.mark.parametrize("other,words", [
        ({"w": torch.zeros(2, 2), "b": torch.zeros(1)}, "differ in keys"),
        ({"w": torch.zeros(2, 3), "b": torch.zeros(1), "steps": torch.tensor(7)}, "differ at w: shape (2, 3)"),
        ({"w": torch.zeros(2, 2), "b": torch.zeros(1), "steps": torch.tensor(8)}, "integer buffer steps"),
    ])
    def test_another_architecture_is_refused_naming_what_differs(self, other, words):
        with pytest.raises(SoupError, match=words.replace("(", r"\(").replace(")", r"\)")):
            uniform_soup({"a": sd(1.0), "x": other})

    def test_one_ingredient_is_no_soup(self):
        with pytest.raises(SoupError, match="at least two"):
            uniform_soup({"a": sd(1.0)})


class TestGreedySoup:
    def test_best_first_and_only_what_does_not_hurt(self):
        # selection accuracy peaks at w = 2: a (w 2) is best alone; b (w 3) keeps the soup at 2.5,
        # worse than 2 alone, so it is dropped; c (w 1) brings the soup back to 1.5... also worse
        acc = lambda s: -abs(float(s["w"][0, 0]) - 2.0)  # noqa: E731
        soup, kept, log = greedy_soup({"a": sd(2.0), "b": sd(3.0), "c": sd(1.0)}, acc)
        assert kept == ["a"] and float(soup["w"][0, 0]) == 2.0
        assert [(s.ingredient, s.kept) for s in log] == [("a", True), ("b", False), ("c", False)]

    def test_a_pair_that_helps_is_kept(self):
        acc = lambda s: -abs(float(s["w"][0, 0]) - 2.0)  # noqa: E731
        soup, kept, log = greedy_soup({"a": sd(1.5), "b": sd(2.5), "c": sd(9.0)}, acc)
        assert kept == ["a", "b"] and float(soup["w"][0, 0]) == 2.0  # ties in accuracy: by name
        assert log[-1].ingredient == "c" and not log[-1].kept


class TestPaired:
    def test_counts_difference_interval_and_mcnemar(self):
        a = np.array([1] * 60 + [0] * 40)
        b = np.array([1] * 50 + [0] * 10 + [1] * 30 + [0] * 10)  # A-only 10, B-only 30
        p = paired(a, b)
        assert (p.only_a, p.only_b, p.n) == (10, 30, 100) and p.diff_pp == pytest.approx(20.0)
        assert p.lo_pp < 20.0 < p.hi_pp and p.p_value < 0.01

    def test_identical_outcomes_differ_by_nothing(self):
        a = np.array([1, 0, 1, 1])
        p = paired(a, a)
        assert (p.diff_pp, p.p_value, p.lo_pp, p.hi_pp) == (0.0, 1.0, 0.0, 0.0)

    def test_interval_covers_at_its_level(self):
        """Simulation: B right with prob 0.62 where A is 0.60, correlated; 95% nominal coverage."""
        rng = np.random.default_rng(0)
        hits, trials, n = 0, 400, 500
        for _ in range(trials):
            u = rng.random(n)
            a, b = u < 0.60, (u < 0.58) | ((u > 0.90) & (u < 0.94))  # true difference +2 pp
            p = paired(a, b)
            hits += p.lo_pp <= 2.0 <= p.hi_pp
        assert 0.92 <= hits / trials <= 0.98

    def test_different_example_sets_are_refused(self):
        with pytest.raises(ValueError, match="equal-length"):
            paired(np.ones(3), np.ones(4))
