"""Throughput runner: token plan vs what reaches the first block, rotation, a real (tiny) sweep."""
from __future__ import annotations

import pytest
import torch

from cliprepro.runflow import judge_all
from runners import declared_metrics, throughput
from runners.model.models import TokenProbe, build, model_config, with_overrides
from runners.schema.params import Arm, ThroughputParams
from runners.timing.timing import interleaved_rounds, rotated
from tests.conftest import gate_entry


class TestPlannedTokens:
    @pytest.mark.parametrize("model,size,drop,tokens", [
        ("ViT-Proxy-256tok", None, 0.0, 257), ("ViT-Proxy-256tok", None, 0.5, 129),
        ("ViT-Proxy-256tok", None, 0.75, 65), ("ViT-L-16-FLIP", None, 0.0, 197),
        ("ViT-L-16-FLIP", None, 0.5, 99), ("ViT-L-16-FLIP", None, 0.75, 50),
        ("ViT-L-16-FLIP", 112, 0.0, 50), ("ViT-L-16-FLIP", 64, 0.0, 17),
    ])
    def test_plan(self, model, size, drop, tokens):
        cfg = with_overrides(model_config(model), image_size=size)
        assert throughput.planned_tokens(cfg, Arm(name="a", patch_dropout=drop)) == tokens

    @pytest.mark.parametrize("kind,tokens", [("random", 65), ("grid", 65), ("block", 65)])
    def test_equal_budgets_across_mask_kinds(self, kind, tokens):
        cfg = model_config("ViT-Proxy-256tok")
        assert throughput.planned_tokens(cfg, Arm(name="a", patch_dropout=0.75, mask_kind=kind)) == tokens


class TestTokenProbe:
    @pytest.mark.parametrize("train,drop,seen", [(True, 0.5, 129), (True, 0.0, 257), (False, 0.5, 257)])
    def test_sees_tokens_really_computed(self, train, drop, seen):
        """PatchDropout works only in train mode: eval mode would silently time the full sequence."""
        cfg = with_overrides(model_config("ViT-Proxy-256tok"), patch_dropout=drop)
        model = build(cfg).train(train)
        probe = TokenProbe(model.visual.transformer)
        with torch.no_grad():
            model.visual(torch.zeros(2, 3, 64, 64))
        probe.close()
        assert probe.seen == [seen]


class TestRounds:
    @pytest.mark.parametrize("r,order", [(0, ["a", "b", "c"]), (1, ["b", "c", "a"]), (5, ["c", "a", "b"])])
    def test_rotation(self, r, order):
        assert rotated(["a", "b", "c"], r) == order

    def test_every_arm_leads_a_round(self):
        calls: list[str] = []
        steps = {n: (lambda n=n: calls.append(n)) for n in "abc"}
        out = interleaved_rounds(steps, rounds=3, min_block_s=0.0, warmup_steps=1,
                                 device=torch.device("cpu"))
        assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3, "c": 3}
        timed = calls[6:]  # 3 warm-up calls, 3 sizing calls, then one step per block
        assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def _tiny_params(**kw) -> ThroughputParams:
    # model_construct: below the suite minimums (9 rounds, 1 s blocks) to keep the test fast
    data = dict(model="ViT-Proxy-256tok", image_size=None, context_length=None, modes=["step"],
                precision="fp32", batch_size=2, rounds=3, min_block_s=0.0, warmup_steps=1, seed=0,
                arms=[Arm(name="mask0"), Arm(name="mask75", patch_dropout=0.75)])
    data.update(kw)
    return ThroughputParams.model_construct(**data)


class TestRun:
    def test_tiny_sweep_measures_and_matches_plan(self):
        out = throughput.run(_tiny_params(), "proxy")
        assert out.errors == []
        m = out.metrics["speedup_step_mask75"]
        assert m.n == 3 and len(m.samples) == 3 and m.lo <= m.value <= m.hi
        assert out.beside["speedup_step_mask75"]["flops_ideal_speedup"] > 2
        assert [p["tokens_first_block_seen"] for p in out.points] == [[257], [65]]
        assert set(out.metrics) | set(out.skip) == declared_metrics(_tiny_params())  # what it declares

    def test_token_mismatch_is_an_error_verdict(self, monkeypatch):
        monkeypatch.setattr(throughput, "planned_tokens", lambda cfg, arm: 999)
        out = throughput.run(_tiny_params(rounds=1), "proxy")
        assert any("planned 999 tokens" in e for e in out.errors)
        entry = gate_entry(metric="speedup_step_mask75")
        [result] = judge_all([entry], out.metrics, out.beside, out.errors)
        assert result.verdict == "error" and "planned 999" in result.reason
