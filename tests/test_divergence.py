"""Divergence: the pure check, the loss wrapper, and a run whose loss passes its declared bound
recorded as an error (slow)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from runners.upstream.divergence import DivergenceGuard, Diverged, divergence


class TestDivergence:
    @pytest.mark.parametrize("loss, bound, said", [
        (5.5, None, ""),
        (5.5, 6.0, ""),
        (6.0, 6.0, ""),  # at the bound is not past it
        (6.01, 6.0, "past the declared bound"),
        (math.nan, None, "loss is nan"),
        (math.inf, 100.0, "loss is inf"),
        (-math.inf, None, "loss is -inf"),
    ])
    def test_table(self, loss, bound, said):
        got = divergence(loss, bound)
        assert (said in got) if said else got == ""


class _Loss(torch.nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def forward(self, **_):
        v = self.values.pop(0)
        return {"contrastive_loss": torch.tensor(v), "other": torch.tensor(0.0)}


class TestDivergenceGuard:
    def test_finite_losses_pass_through_unchanged(self):
        inner = _Loss([2.0, 1.5])
        guard = DivergenceGuard(inner, max_loss=10.0)
        out = guard(image_features=None)
        assert float(out["contrastive_loss"]) == 2.0 and guard.calls == 1
        assert float(guard()["contrastive_loss"]) == 1.5

    def test_the_first_nan_stops(self):
        guard = DivergenceGuard(_Loss([2.0, math.nan, 1.0]))
        guard()
        with pytest.raises(Diverged, match="loss evaluation 2 .*loss is nan"):
            guard()

    def test_the_sum_of_the_losses_is_checked(self):
        guard = DivergenceGuard(_Loss([3.0]), max_loss=2.5)  # 3.0 + 0.0 > 2.5
        with pytest.raises(Diverged, match="max_loss 2.5"):
            guard()


@pytest.mark.slow
def test_a_run_past_its_loss_bound_is_an_error_not_a_miss(tmp_path):
    """A CLIP loss starts near 2 ln(batch) (~8 at 64): a bound of 0.5 stops the first step. The
    record is `error` with where it diverged, and no verdict is `not_reproduced`."""
    from tests.test_train import _root, _run

    root = _root(tmp_path)
    suite = root / "suites" / "tiny_train.yaml"
    suite.write_text(suite.read_text().replace("      retrieval: false\n", "      retrieval: false\n      max_loss: 0.5\n"))
    proc = _run(root)
    assert proc.wait(timeout=300) == 1, proc.stderr.read().decode()[-2000:]
    [path] = (root / "build").glob("**/tiny_train*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "error"
    assert "diverged" in record["message"] and "max_loss 0.5" in record["message"]
    assert {r["verdict"] for r in record["results"]} == {"error"}
