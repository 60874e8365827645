"""One CLIP training step per sweep arm: model, inputs, optimizer, attention kernel; and what it
really ran (tokens at the first block, SDPA kernels the profiler saw, peak memory)."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import torch
from open_clip.loss import ClipLoss
from torch.nn.attention import SDPBackend, sdpa_kernel

from runners.model.masks import install, kept_patches
from runners.model.models import build, model_config, with_overrides
from runners.schema.params import Arm, OptimizerCfg, ThroughputParams
from runners.timing.timing import Step

# flash for the image tower; the text tower's causal mask needs math (CPU flash takes no mask)
BACKENDS = {"flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH], "math": [SDPBackend.MATH]}


def arm_config(params: ThroughputParams, arm: Arm) -> dict:
    base = model_config(arm.model or params.model)
    return with_overrides(base, image_size=arm.image_size or params.image_size,
                          context_length=arm.context_length or params.context_length,
                          patch_dropout=arm.patch_dropout if arm.mask_kind == "random" else 0.0)


def planned_tokens(cfg: dict, arm: Arm) -> int:
    """Tokens reaching the first vision block: the patches the mask keeps plus the class token."""
    v = cfg["vision_cfg"]
    side = v["image_size"] if isinstance(v["image_size"], int) else v["image_size"][0]
    g = side // v["patch_size"]
    return kept_patches(arm.mask_kind, g, g, arm.patch_dropout) + 1


def build_arm(cfg: dict, arm: Arm, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # equal initial weights in every arm of the same model
    model = build(cfg, device).train()
    install(model, arm.mask_kind, arm.patch_dropout)
    return model


def make_optimizer(kind: str, params, cfg: OptimizerCfg, fused_adamw: bool = False) -> torch.optim.Optimizer:
    """`fused_adamw`: AdamW's one-kernel update, as the trainer uses it (runners.upstream.openclip_main)."""
    if kind == "lamb":
        from timm.optim import Lamb
        return Lamb(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                    max_grad_norm=cfg.max_grad_norm)  # clipping inside Lamb, as timm does it
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, fused=fused_adamw)


def make_step(model, mode: str, batch: int, cfg: dict, device: torch.device, precision: str,
              arm: Arm, opt_cfg: OptimizerCfg, seed: int, fused_adamw: bool = False) -> Step:
    gen = torch.Generator().manual_seed(seed)
    side = cfg["vision_cfg"]["image_size"]
    t = cfg["text_cfg"]
    images = torch.randn(batch, 3, side, side, generator=gen).to(device)
    texts = torch.randint(0, t["vocab_size"], (batch, t["context_length"]), generator=gen).to(device)
    trained = list(model.visual.parameters() if mode == "image_tower" else model.parameters())
    opt = make_optimizer(arm.optimizer, trained, opt_cfg, fused_adamw)
    loss_fn = ClipLoss()
    clip_outside = arm.optimizer == "adamw" and opt_cfg.max_grad_norm is not None

    def step() -> None:
        kernel = sdpa_kernel(BACKENDS[arm.attention]) if arm.attention in BACKENDS else contextlib.nullcontext()
        with kernel, torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            if mode == "image_tower":
                loss = model.visual(images).float().pow(2).mean()
            else:
                out = model(images, texts)
                loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        loss.backward()
        if clip_outside:
            torch.nn.utils.clip_grad_norm_(trained, opt_cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def sdpa_kernels_seen(step: Step) -> list[str]:
    """The SDPA implementations one step really dispatched to, from the profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    names = {e.name for e in prof.events()}
    return sorted(n for n in names if "attention" in n and n.startswith("aten::_")
                  and "backward" not in n)


def peak_memory_mb(params: ThroughputParams, arm: Arm, mode: str, device: torch.device,
                   step: Step) -> tuple[float | None, str]:
    """CUDA: max allocated over 2 steps of this arm alone. CPU: peak RSS growth in a child process."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    if not params.measure_memory:
        return None, "CPU peak memory needs one process per point; measure_memory is off for this suite"
    job = json.dumps({"params": params.model_dump(mode="json"), "arm": arm.name, "mode": mode})
    proc = subprocess.run([sys.executable, "-m", "runners.timing.memprobe"], input=job, text=True,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return None, f"memory probe failed: {proc.stderr.strip().splitlines()[-1:]}"
    return float(proc.stdout.strip().splitlines()[-1]), "peak RSS growth over 2 steps in its own process"
