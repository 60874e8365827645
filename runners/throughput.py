"""Throughput runner: time an open_clip model's training step over a sweep of arms.

Protocol (DESIGN.md "Runners"): train mode (PatchDropout is a no-op in eval mode); the token count
reaching the first vision block is recorded per arm and a mismatch with the plan is an error;
interleaved rounds in rotated order, timed blocks >= 1 s, >= 9 rounds; per-round ratio of
per-sample times, its median and order-statistic interval; forward FLOPs per sample beside it.
"""
from __future__ import annotations

import torch
from open_clip.loss import ClipLoss

from cliprepro.provenance import device_info
from runners.flops import tower_flops
from runners.models import build, first_block_tokens, image_token_count, model_config, with_overrides
from runners.output import Output, from_samples
from runners.params import Arm, ThroughputParams as Params
from runners.timing import Step, interleaved_rounds

__all__ = ["Params", "plan", "run"]


def planned_tokens(cfg: dict, patch_dropout: float) -> int:
    """Tokens open_clip's PatchDropout keeps: max(1, int(patches * keep)) plus the class token."""
    patches = image_token_count(cfg) - 1
    if patch_dropout == 0:
        return patches + 1
    return max(1, int(patches * (1 - patch_dropout))) + 1


def arm_config(params: Params, arm: Arm) -> dict:
    base = model_config(params.model)
    return with_overrides(base, image_size=params.image_size, context_length=params.context_length,
                          patch_dropout=arm.patch_dropout)


def plan(params: Params, scale: str) -> str:
    lines = [f"throughput: model {params.model}, modes {', '.join(params.modes)}, "
             f"precision {params.precision}, {params.rounds} interleaved rounds, "
             f"timed blocks >= {params.min_block_s} s, warm-up {params.warmup_steps} steps"]
    for arm in params.arms:
        cfg = arm_config(params, arm)
        img, txt = tower_flops(cfg)
        lines.append(f"  arm {arm.name}: patch_dropout {arm.patch_dropout}, batch "
                     f"{arm.batch_size or params.batch_size}, image {cfg['vision_cfg']['image_size']} px, "
                     f"context {cfg['text_cfg']['context_length']}, tokens at first block "
                     f"{planned_tokens(cfg, arm.patch_dropout)}, forward GFLOPs/sample "
                     f"image {img / 1e9:.2f} + text {txt / 1e9:.2f}")
    return "\n".join(lines)


def _make_step(model, mode: str, batch: int, cfg: dict, device: torch.device,
               precision: str, seed: int) -> Step:
    gen = torch.Generator().manual_seed(seed)
    side = cfg["vision_cfg"]["image_size"]
    t = cfg["text_cfg"]
    images = torch.randn(batch, 3, side, side, generator=gen).to(device)
    texts = torch.randint(0, t["vocab_size"], (batch, t["context_length"]), generator=gen).to(device)
    params = model.visual.parameters() if mode == "image_tower" else model.parameters()
    # open_clip_train's ViT defaults; fused kernels only where they exist (CUDA)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    loss_fn = ClipLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            if mode == "image_tower":
                loss = model.visual(images).float().pow(2).mean()
            else:
                out = model(images, texts)
                loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def run(params: Params, scale: str) -> Output:
    device = torch.device("cuda" if scale in ("gpu", "paper") else "cpu")
    out = Output(device=device_info(device))
    baseline = params.arms[0]
    for mode in params.modes:
        steps: dict[str, Step] = {}
        probes = {}
        cfgs = {}
        for arm in params.arms:
            cfg = cfgs[arm.name] = arm_config(params, arm)
            torch.manual_seed(params.seed)  # equal initial weights in every arm
            model = build(cfg, device).train()
            probes[arm.name] = first_block_tokens(model)
            steps[arm.name] = _make_step(model, mode, arm.batch_size or params.batch_size, cfg,
                                         device, params.precision, params.seed)
        secs = interleaved_rounds(steps, rounds=params.rounds, min_block_s=params.min_block_s,
                                  warmup_steps=params.warmup_steps, device=device)
        base_batch = baseline.batch_size or params.batch_size
        base_img, base_txt = tower_flops(cfgs[baseline.name])
        for arm in params.arms:
            batch = arm.batch_size or params.batch_size
            planned = planned_tokens(cfgs[arm.name], arm.patch_dropout)
            seen = sorted(set(probes[arm.name].seen))
            probes[arm.name].close()
            if seen != [planned]:
                out.errors.append(f"{mode}/{arm.name}: planned {planned} tokens at the first block, "
                                  f"saw {seen}")
            img, txt = tower_flops(cfgs[arm.name])
            fwd = img if mode == "image_tower" else img + txt
            per_round_s = secs[arm.name]
            out.metrics[f"ms_per_step_{mode}_{arm.name}"] = from_samples(
                [s * 1e3 for s in per_round_s], "ms")
            out.metrics[f"img_per_s_{mode}_{arm.name}"] = from_samples(
                [batch / s for s in per_round_s], "img/s")
            out.points.append({
                "mode": mode, "arm": arm.name, "patch_dropout": arm.patch_dropout,
                "batch_size": batch, "image_size": cfgs[arm.name]["vision_cfg"]["image_size"],
                "context_length": cfgs[arm.name]["text_cfg"]["context_length"],
                "tokens_first_block_planned": planned, "tokens_first_block_seen": seen,
                "fwd_flops_per_sample": fwd, "train_flops_per_sample_est": 3 * fwd,
                "ms_per_step_median": out.metrics[f"ms_per_step_{mode}_{arm.name}"].value,
                "img_per_s_median": out.metrics[f"img_per_s_{mode}_{arm.name}"].value,
            })
            if arm is baseline:
                continue
            ratios = [(b / base_batch) / (a / batch) for b, a in zip(secs[baseline.name], per_round_s)]
            name = f"speedup_{mode}_{arm.name}"
            out.metrics[name] = from_samples(ratios, "x")
            base_fwd = base_img if mode == "image_tower" else base_img + base_txt
            out.beside[name] = {"flops_ideal_speedup": round(base_fwd / fwd, 4)}
    return out
