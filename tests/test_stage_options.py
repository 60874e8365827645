"""A stage's optimizer (timm's Lamb with every setting explicit) and attention kernel: the trainer's
arguments, the cache key, the kernel check, and (slow) one stage trained with both."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.schema.train_params import LambSettings, Stage, TrainParams
from runners.training import probe
from runners.training.proxydata import DataSpec
from runners.training.sources import proxy_at
from runners.training.stage import stage_argv, stage_key

BASE = dict(model="ViT-TinyB-CL16", epochs=1, batch_size=64, lr=1e-3)
SOURCE = proxy_at(DataSpec(train_samples=64), Path("/nonexistent"), [])


def _flags(argv: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}


class TestLambArguments:
    def test_lamb_stages_pass_every_setting(self, tmp_path):
        p = TrainParams(seeds=[0], stages=[Stage(name="s", optimizer="lamb", **BASE)],
                        lamb=LambSettings(betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1, max_grad_norm=None))
        flags = _flags(stage_argv(p, p.stages[0], SOURCE, tmp_path, 0, None))
        assert (flags["--opt"], flags["--beta1"], flags["--beta2"], flags["--eps"], flags["--wd"]) == (
            "timm/lamb", "0.9", "0.98", "1e-06", "0.1")
        assert json.loads(flags["--cliprepro-optimizer-kwargs"]) == {
            "max_grad_norm": None, "always_adapt": False, "trust_clip": False}

    def test_adamw_stages_are_as_before(self, tmp_path):
        p = TrainParams(seeds=[0], stages=[Stage(name="s", **BASE)], lamb=LambSettings(weight_decay=0.3))
        flags = _flags(stage_argv(p, p.stages[0], SOURCE, tmp_path, 0, None))
        assert "--opt" not in flags and "--cliprepro-optimizer-kwargs" not in flags and flags["--wd"] == "0.1"
        # later fields: an AdamW stage dumps (and keys) as it did before they existed
        assert not {"optimizer", "attention", "mim", "data_seed"} & set(p.stages[0].model_dump())
        assert "lamb" not in TrainParams(seeds=[0], stages=[Stage(name="s", **BASE)]).model_dump()

    def test_lamb_settings_key_only_the_stages_that_use_them(self):
        def key(stage: dict, **lamb) -> str:
            p = TrainParams(seeds=[0], stages=[Stage(name="a", **BASE), Stage(name="b", init="a", **stage)],
                            lamb=LambSettings(**lamb))
            return stage_key(p, p.stages[1], SOURCE, 0)

        adamw, lamb = {**BASE}, {**BASE, "optimizer": "lamb"}
        assert key(adamw) == key(adamw, always_adapt=True)
        assert key(lamb) != key(lamb, always_adapt=True) and key(lamb) != key(adamw)


class TestAttentionCheck:
    FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
    MATH = "aten::_scaled_dot_product_attention_math"

    @pytest.mark.parametrize("planned, kernels, said", [
        ("flash", [FLASH, MATH], ""),  # the causal text tower may take math
        ("flash", [MATH], "flash attention planned"),
        ("math", [MATH], ""),
        ("math", [FLASH, MATH], "math attention planned"),
        ("flash", None, "not recorded"),
    ])
    def test_table(self, planned, kernels, said):
        got = probe.attention_problems("s", planned, kernels)
        assert (said in got[0]) if said else got == []


class TestExplicitOptimizer:
    def test_timm_gets_the_settings_open_clip_train_leaves_out(self, monkeypatch):
        import timm.optim
        import torch

        from runners.upstream import openclip_main

        monkeypatch.setattr(timm.optim, "create_optimizer_v2", timm.optim.create_optimizer_v2)  # restored after
        openclip_main._explicit_optimizer({"max_grad_norm": None, "always_adapt": True, "trust_clip": False})
        model = torch.nn.Linear(4, 4)
        opt = timm.optim.create_optimizer_v2(model, "lamb", lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999))
        group = opt.param_groups[0]
        assert type(opt).__name__ == "Lamb" and group["max_grad_norm"] is None and group["always_adapt"] is True


@pytest.mark.slow
def test_a_lamb_stage_with_flash_attention_trains_as_planned(tmp_path):
    """Through open_clip_train: the checkpoint's optimizer is timm's Lamb with the declared settings
    (not timm's clipping default), and the first step ran a flash kernel."""
    import torch

    from runners.training.sources import proxy
    from runners.training.stage import STAGE_DIR, run_stage

    source = proxy(DataSpec(seed=2, image_px=32, train_samples=256, eval_samples=10, shard_samples=128),
                   tmp_path / "data", [])
    stage = Stage(name="s", optimizer="lamb", attention="flash", **BASE)
    params = TrainParams(seeds=[0], stages=[stage], lamb=LambSettings(max_grad_norm=None, always_adapt=False))
    ckpt, _ = run_stage(params, stage, source, tmp_path / "logs", 0, None)
    groups = torch.load(ckpt, map_location="cpu", weights_only=True)["optimizer"]["param_groups"]
    assert {(g["max_grad_norm"], g["always_adapt"], tuple(g["betas"]), g["eps"]) for g in groups} == {
        (None, False, (0.9, 0.999), 1e-8)}
    assert "Lamb" in (tmp_path / "logs" / STAGE_DIR / "out.log").read_text()
    assert probe.problems(stage, tmp_path / "logs") == []
    seen = json.loads((tmp_path / "logs" / probe.PROBE).read_text())
    assert seen["attention"] == "flash" and any("flash" in k for k in seen["sdpa_kernels"])
