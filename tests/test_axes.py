"""Every sweep axis of the throughput runner really makes its two arms differ (tiny CPU steps)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from open_clip.transformer import PatchDropout
from pydantic import ValidationError
from timm.optim import Lamb

from runners.model.masks import PatchSelect
from runners.model.models import TokenProbe
from runners.schema.params import Arm, OptimizerCfg, ThroughputParams
from runners.timing.trainstep import (arm_config, build_arm, make_optimizer, make_step, planned_tokens,
                               sdpa_kernels_seen)

CPU = torch.device("cpu")
FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH = "aten::_scaled_dot_product_attention_math"


def params_for(*arms: Arm, **kw) -> ThroughputParams:
    return ThroughputParams(model="ViT-Proxy-256tok", modes=["step"], batch_size=2, arms=list(arms), **kw)


@dataclass
class Built:
    arm: Arm
    cfg: dict
    model: torch.nn.Module
    step: object

    def tokens_seen(self) -> list[int]:
        """Sequence lengths entering the first vision block during one training step."""
        probe = TokenProbe(self.model.visual.transformer)
        try:
            self.step()
        finally:
            probe.close()
        return probe.seen


def setup(arm: Arm, params: ThroughputParams | None = None) -> Built:
    params = params or params_for(arm, Arm(name="other_arm"))
    cfg = arm_config(params, arm)
    model = build_arm(cfg, arm, CPU, 0)
    step = make_step(model, "step", 2, cfg, CPU, "fp32", arm, params.optimizer, 0)
    return Built(arm, cfg, model, step)


@pytest.fixture(scope="module")
def baseline() -> tuple[Built, list[int]]:
    """The default arm (64 px, no mask, context 32) and the tokens its step computed, built once."""
    built = setup(Arm(name="base"))
    return built, built.tokens_seen()


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


class TestImageSizeAxis:
    def test_default_arm(self, baseline):
        built, seen = baseline
        assert built.cfg["vision_cfg"]["image_size"] == 64
        assert planned_tokens(built.cfg, built.arm) == 257
        assert seen == [257]

    @pytest.mark.parametrize("size,tokens", [(32, 65), (16, 17), (48, 145)])
    def test_resized_arm(self, baseline, size, tokens):
        built = setup(Arm(name="small", image_size=size))
        assert built.cfg["vision_cfg"]["image_size"] == size
        assert built.model.visual.grid_size == (size // 4, size // 4)
        assert planned_tokens(built.cfg, built.arm) == tokens
        assert built.tokens_seen() == [tokens]
        assert tokens != baseline[1][0]

    def test_run_level_image_size_is_inherited_and_arm_overrides(self):
        small, own = Arm(name="small"), Arm(name="own", image_size=48)
        params = params_for(small, own, image_size=32)
        assert arm_config(params, small)["vision_cfg"]["image_size"] == 32
        assert arm_config(params, own)["vision_cfg"]["image_size"] == 48


class TestMaskKindAxis:
    @pytest.mark.parametrize("kind,module", [("random", PatchDropout), ("grid", PatchSelect),
                                             ("block", PatchSelect)])
    def test_masked_arm_computes_65_tokens(self, baseline, kind, module):
        built = setup(Arm(name="masked", mask_kind=kind, patch_dropout=0.75))
        assert isinstance(built.model.visual.patch_dropout, module)
        # only one mask acts: open_clip's PatchDropout is off under grid / block
        assert built.cfg["vision_cfg"]["patch_dropout"] == (0.75 if kind == "random" else 0.0)
        assert planned_tokens(built.cfg, built.arm) == 65
        assert built.tokens_seen() == [65]
        assert baseline[1] == [257]

    @pytest.mark.parametrize("kind,drop,tokens", [("random", 0.5, 129), ("block", 0.5, 129)])
    def test_other_drop_ratios(self, kind, drop, tokens):
        built = setup(Arm(name="masked", mask_kind=kind, patch_dropout=drop, image_size=64))
        assert planned_tokens(built.cfg, built.arm) == tokens
        assert built.tokens_seen() == [tokens]

    def test_no_mask_arm_has_no_dropout(self, baseline):
        built, _ = baseline
        assert isinstance(built.model.visual.patch_dropout, torch.nn.Identity)


class TestContextLengthAxis:
    @pytest.mark.parametrize("context", [16, 32, 8])
    def test_text_positions_follow_context(self, context):
        arm = Arm(name="ctx", context_length=context, image_size=32)  # small images: a cheap step
        built = setup(arm)
        assert built.cfg["text_cfg"]["context_length"] == context
        assert built.model.positional_embedding.shape == (context, 256)
        assert built.model.context_length == context
        before = built.model.positional_embedding.detach().clone()
        built.step()
        after = built.model.positional_embedding.detach()
        assert torch.isfinite(after).all()
        assert not torch.equal(before, after)  # the step trained the text tower

    def test_arms_differ(self):
        short, long = Arm(name="short", context_length=16), Arm(name="long")
        params = params_for(short, long)
        assert arm_config(params, short)["text_cfg"]["context_length"] == 16
        assert arm_config(params, long)["text_cfg"]["context_length"] == 32


@pytest.fixture(scope="module")
def kernels() -> dict[str, list[str]]:
    """SDPA kernels the profiler saw in one step of a flash arm and of a math arm."""
    flash, math = Arm(name="flash", attention="flash"), Arm(name="math", attention="math")
    params = params_for(flash, math, image_size=32)
    return {arm.name: sdpa_kernels_seen(setup(arm, params).step) for arm in (flash, math)}


class TestAttentionAxis:
    def test_flash_arm_runs_flash(self, kernels):
        assert FLASH in kernels["flash"]

    def test_math_arm_runs_math_only(self, kernels):
        assert kernels["math"] == [MATH]

    def test_arms_differ(self, kernels):
        assert kernels["flash"] != kernels["math"]
        assert FLASH not in kernels["math"]


CUSTOM = OptimizerCfg(lr=1e-3, betas=(0.8, 0.95), eps=1e-7, weight_decay=0.1, max_grad_norm=2.0)


class TestOptimizerAxis:
    @pytest.mark.parametrize("kind,cls", [("adamw", torch.optim.AdamW), ("lamb", Lamb)])
    @pytest.mark.parametrize("cfg", [OptimizerCfg(), CUSTOM, OptimizerCfg(max_grad_norm=0.5)])
    def test_explicit_hyperparameters(self, kind, cls, cfg):
        opt = make_optimizer(kind, [torch.nn.Parameter(torch.ones(3))], cfg)
        assert type(opt) is cls
        group = opt.param_groups[0]
        assert group["lr"] == cfg.lr
        assert tuple(group["betas"]) == cfg.betas
        assert group["eps"] == cfg.eps
        assert group["weight_decay"] == cfg.weight_decay
        if kind == "lamb":
            assert group["max_grad_norm"] == cfg.max_grad_norm  # None: timm's default 1.0 would clip
            assert group["trust_clip"] is False and group["always_adapt"] is False

    def test_lamb_without_max_grad_norm_does_not_clip(self):
        opt = make_optimizer("lamb", [torch.nn.Parameter(torch.ones(3))], OptimizerCfg())
        assert opt.param_groups[0]["max_grad_norm"] is None
        assert opt.defaults["max_grad_norm"] is None

    def test_one_step_from_equal_weights_differs(self):
        adamw, lamb = Arm(name="adamw", optimizer="adamw"), Arm(name="lamb", optimizer="lamb")
        params = params_for(adamw, lamb, image_size=32)
        a, b = setup(adamw, params), setup(lamb, params)
        start_a, start_b = snapshot(a.model), snapshot(b.model)
        assert start_a.keys() == start_b.keys()
        assert all(torch.equal(start_a[k], start_b[k]) for k in start_a)  # same seed, same weights
        a.step()
        b.step()
        end_a, end_b = snapshot(a.model), snapshot(b.model)
        assert not torch.equal(end_a["visual.proj"], start_a["visual.proj"])
        assert not torch.equal(end_b["visual.proj"], start_b["visual.proj"])
        differing = [k for k in end_a if not torch.equal(end_a[k], end_b[k])]
        assert len(differing) > len(end_a) // 2


class TestArmValidation:
    @pytest.mark.parametrize("kw", [
        dict(mask_kind="grid", patch_dropout=0.5), dict(mask_kind="grid", patch_dropout=0.8),
        dict(mask_kind="grid", patch_dropout=0.0), dict(mask_kind="block", patch_dropout=0.0),
        dict(mask_kind="grid"), dict(mask_kind="block"), dict(patch_dropout=1.0),
        dict(patch_dropout=-0.1), dict(mask_kind="checkerboard", patch_dropout=0.75),
        dict(attention="sparse"), dict(optimizer="sgd"), dict(image_size=4), dict(context_length=1),
    ])
    def test_invalid_arm_raises(self, kw):
        with pytest.raises(ValidationError):
            Arm(name="bad", **kw)

    @pytest.mark.parametrize("kw", [
        dict(), dict(mask_kind="grid", patch_dropout=0.75), dict(mask_kind="block", patch_dropout=0.5),
        dict(mask_kind="random", patch_dropout=0.0), dict(mask_kind="random", patch_dropout=0.75),
    ])
    def test_valid_arm(self, kw):
        assert Arm(name="ok", **kw).name == "ok"

    @pytest.mark.parametrize("arms", [
        [Arm(name="a"), Arm(name="b", baseline="nope")],
        [Arm(name="a"), Arm(name="b", baseline="b")],
        [Arm(name="a"), Arm(name="a")],
        [Arm(name="a")],
    ])
    def test_invalid_arm_set_raises(self, arms):
        with pytest.raises(ValidationError):
            params_for(*arms)

    def test_baseline_of(self):
        a, b, c = Arm(name="a"), Arm(name="b"), Arm(name="c", baseline="b")
        params = params_for(a, b, c)
        assert params.baseline_of(params.arms[0]) is None
        assert params.baseline_of(params.arms[1]).name == "a"
        assert params.baseline_of(params.arms[2]).name == "b"
