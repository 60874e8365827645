"""What the first training batch of a stage must carry, and what it did (the trainer's token probe,
runners.upstream.openclip_main): tokens at the first image and text blocks, the patch positions the
image mask kept, and the SDPA kernels of the first step when a stage names its attention."""
from __future__ import annotations

import json
from pathlib import Path

from runners.model.masks import classify_kept, kept_patches, planned_mask
from runners.model.models import image_token_count, model_config, with_overrides
from runners.schema.train_params import Stage
from runners.training.stage import PROBE


def planned_tokens(stage: Stage) -> dict[str, int]:
    """Tokens that must reach the first image and text blocks in training (checked by the probe)."""
    cfg = with_overrides(model_config(stage.model), image_size=stage.image_size,
                         context_length=stage.context_length)
    side = (cfg["vision_cfg"]["image_size"]) // cfg["vision_cfg"]["patch_size"]
    patches = kept_patches(stage.mask_kind, side, side, stage.patch_dropout or 0.0)
    return {"image_tokens": image_token_count(cfg) - side * side + patches,
            "text_tokens": cfg["text_cfg"]["context_length"]}



def problems(stage: Stage, logs: Path) -> list[str]:
    """Each mismatch between the plan and what the first training batch carried: tokens, which
    patches the mask kept, the attention kernels."""
    probe = logs / PROBE
    if stage.epochs == 0 or stage.mim is not None:  # nothing trained, or no CLIP batch (MIM)
        return []
    if not probe.exists():
        return [f"stage {stage.name}: no first-batch token probe at {probe}"]
    seen, planned = json.loads(probe.read_text()), planned_tokens(stage)
    errors = [f"stage {stage.name}: {k} planned {planned[k]}, first training batch had {seen.get(k)}"
              for k in planned if seen.get(k) != planned[k]]
    mask = mask_seen(seen)
    want = planned_mask(stage.mask_kind, stage.patch_dropout)
    if mask != want:  # counts cannot tell grid, block and random apart; the positions can
        errors.append(f"stage {stage.name}: image mask planned {want}, the first training batch kept "
                      f"patches as {mask}")
    if stage.attention != "default":
        errors += attention_problems(stage.name, stage.attention, seen.get("sdpa_kernels"))
    return errors


def attention_problems(name: str, planned: str, kernels: list[str] | None) -> list[str]:
    """flash: some flash kernel ran (the text tower's causal mask may still take math on CPU);
    math: no fused kernel ran."""
    if kernels is None:
        return [f"stage {name}: attention {planned} planned, the first step's kernels were not recorded"]
    fused = [k for k in kernels if "flash" in k or "efficient" in k or "cudnn" in k]
    if planned == "flash" and not any("flash" in k for k in kernels):
        return [f"stage {name}: flash attention planned, the first step ran {kernels}"]
    if planned == "math" and fused:
        return [f"stage {name}: math attention planned, the first step ran {fused}"]
    return []


def mask_seen(probe: dict) -> str | None:
    """How the first training batch's kept patch positions look (None: not recorded)."""
    if "image_positions" not in probe:
        return None
    h, w = probe["image_grid"]
    return classify_kept(probe["image_positions"], h, w)
