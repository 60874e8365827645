"""A run's soups: the selection / test split and the paired soup metrics (pure), and the checks on
the soup's declaration."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from runners.schema.train_params import Soup, Stage, TrainParams
from runners.training import soups

MODEL = "ViT-Tiny96-P8"


def _params(**soup) -> TrainParams:
    stages = [Stage(name=n, model=MODEL, epochs=1, batch_size=8, lr=1e-3) for n in ("a", "b", "c")]
    return TrainParams(stages=stages, seeds=[0, 1], attributes=["shape", "color"],
                       soups=[{"name": "soup", "of": ["a", "b", "c"], **soup}])


class TestSelectionMask:
    @pytest.mark.parametrize("n_total, n_attr, fraction, want", [
        (8, 2, 0.5, [1, 1, 0, 0, 1, 1, 0, 0]),
        (6, 1, 0.5, [1, 1, 1, 0, 0, 0]),
        (8, 2, 0.25, [1, 0, 0, 0, 1, 0, 0, 0]),
    ])
    def test_every_attribute_in_both_splits(self, n_total, n_attr, fraction, want):
        assert soups.selection_mask(n_total, n_attr, fraction).astype(int).tolist() == want


class TestMeasure:
    def test_best_is_picked_on_selection_and_judged_on_test(self):
        """a is best on the selection half, c on the test half: the soup is compared with a."""
        sel = np.array([1, 1, 0, 0])  # per attribute block of 4: 2 selection + 2 test examples
        block = lambda s, t: np.concatenate([s[:2], t[2:]])  # noqa: E731
        one = {"a": block(np.ones(4), np.zeros(4)), "b": block(np.zeros(4), np.zeros(4)),
               "c": block(np.zeros(4), np.ones(4)), "soup": block(sel, np.ones(4))}
        correct = {(n, seed): np.tile(v, 2).astype(np.uint8) for n, v in one.items() for seed in (0, 1)}
        metrics, points = soups.measure(_params(), _params().soups[0], correct, [0, 1])
        assert [p["best_ingredient"] for p in points] == ["a", "a"]
        assert metrics["soup_over_best_soup"].value == pytest.approx(100.0)  # 1 - 0 on every test example
        assert metrics["soup_over_mean_soup"].value == pytest.approx(100 * (1 - 1 / 3))
        assert points[0]["test_examples"] == 4 and points[0]["vs_best_only_soup"] == 4

    def test_a_soup_that_collapses_is_negative(self):
        correct = {(n, s): np.ones(8, dtype=np.uint8) for n in "abc" for s in (0, 1)}
        correct |= {("soup", s): np.zeros(8, dtype=np.uint8) for s in (0, 1)}
        metrics, _ = soups.measure(_params(), _params().soups[0], correct, [0, 1])
        assert metrics["soup_over_mean_soup"].value == -100 and metrics["soup_over_best_soup"].value == -100


class TestVersus:
    def test_gain_over_mean_minus_the_other_soups(self):
        stages = [Stage(name=n, model=MODEL, epochs=1, batch_size=8, lr=1e-3) for n in "abcd"]
        params = TrainParams(stages=stages, seeds=[0], attributes=["shape"],
                             soups=[{"name": "ref", "of": ["c", "d"]}, {"name": "soup", "of": ["a", "b"], "versus": "ref"}])
        ones, zeros = np.ones(4, dtype=np.uint8), np.zeros(4, dtype=np.uint8)
        correct = {(n, 0): ones for n in "abcd"} | {("soup", 0): ones, ("ref", 0): zeros}
        metrics, _ = soups.measure(params, params.soups[1], correct, [0])
        assert metrics["soup_over_mean_soup_minus_ref"].value == pytest.approx(100.0)  # 0 - (-100)
        with pytest.raises(ValidationError, match="versus must name an earlier soup"):
            TrainParams(stages=stages, seeds=[0], soups=[{"name": "soup", "of": ["a", "b"], "versus": "ref"}])


class TestDeclaration:
    def test_ingredients_must_be_stages_of_one_architecture(self):
        with pytest.raises(ValidationError, match="no stage 'z'"):
            _params(of=["a", "z"])
        stages = [Stage(name="a", model=MODEL, epochs=1, batch_size=8, lr=1e-3),
                  Stage(name="b", model="ViT-Tiny48-P8", epochs=1, batch_size=8, lr=1e-3)]
        with pytest.raises(ValidationError, match="one architecture"):
            TrainParams(stages=stages, seeds=[0], soups=[Soup(name="s", of=["a", "b"])])


class TestCheckpoint:
    def test_the_uniform_average_saved_once(self, tmp_path):
        import torch

        paths = {}
        for name, value in (("a", 1.0), ("b", 3.0)):
            paths[name] = (tmp_path / f"{name}.pt", f"key-{name}")
            torch.save({"state_dict": {"w": torch.full((2,), value)}, "epoch": 1}, paths[name][0])
        soup = Soup(name="s", of=["a", "b"])
        out = soups.checkpoint(soup, paths, tmp_path / "cache")
        assert torch.equal(torch.load(out, weights_only=True)["state_dict"]["w"], torch.full((2,), 2.0))
        assert soups.checkpoint(soup, paths, tmp_path / "cache") == out  # keyed by its ingredients
        other = {**paths, "b": (paths["b"][0], "key-b-seed1")}  # another training of one ingredient
        again = soups.checkpoint(soup, other, tmp_path / "cache")
        assert again != out  # a soup of other models is never the cached one
