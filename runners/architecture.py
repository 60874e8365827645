"""Architecture runner: exact FLOPs ratios and parameter counts of full-size models on the meta device.

No GPU, no data, no memory: these checks run at the paper's own size in CI.

Counting conventions (stated so a reader can check them): FLOPs are forward FLOPs per sample from
torch's FlopCounterMode (matmul-type ops), in train mode so PatchDropout drops tokens; a masking
ratio's FLOPs ratio is (image + text) with mask over (image + text) without. Parameter counts of an
encoder exclude its output projection into the joint embedding (FLIP Table 9 counts encoders)
unless `include_projections` (open_clip's model_profile.csv: the image tower with its projection,
the text side is every other parameter but logit_scale); the total counts every parameter.
"""
from __future__ import annotations

from pathlib import Path

from cliprepro.provenance import device_info
from runners.model.flops import tower_flops
from runners.schema import metric_names as names
from runners.model.models import build, model_config, with_overrides
from runners.schema.output import Output, exact
from runners.schema.params import ArchitectureParams as Params

__all__ = ["Params", "plan", "run"]


def _cfg(params: Params, model: str, patch_dropout: float | None = None) -> dict:
    cfg = with_overrides(model_config(model), context_length=params.text_context_length,
                         vocab_size=params.text_vocab_size, patch_dropout=patch_dropout)
    cfg["vision_cfg"].update(params.vision_overrides)
    return cfg


def plan(params: Params, scale: str) -> str:
    lines = ["architecture: exact counts on the meta device (no GPU, no data)"]
    for spec in params.flops:
        cfg = _cfg(params, spec.model)
        lines.append(f"  FLOPs {spec.name}: {spec.model}, image {cfg['vision_cfg']['image_size']} px, "
                     f"text context {cfg['text_cfg']['context_length']}, masks {spec.patch_dropouts}")
    for spec in params.param_counts:
        cfg = _cfg(params, spec.model)
        lines.append(f"  parameters {spec.name}: {spec.model}, text vocab "
                     f"{cfg['text_cfg']['vocab_size']}, context {cfg['text_cfg']['context_length']}")
    return "\n".join(lines)


def run(params: Params, scale: str, build_dir: Path | None = None) -> Output:
    out = Output(device=device_info(None))
    for spec in params.flops:
        base_img, base_txt = tower_flops(_cfg(params, spec.model, 0.0))
        out.metrics[names.text_share(spec.name)] = exact(100 * base_txt / base_img, "%")
        out.points.append({"flops": spec.name, "patch_dropout": 0.0, "image_fwd_flops": base_img,
                           "text_fwd_flops": base_txt})
        for ratio in spec.patch_dropouts:  # the label is the planned ratio, whether applied or not
            img, txt = tower_flops(_cfg(params, spec.model, ratio if params.apply_patch_dropout else 0.0))
            out.metrics[names.flops_ratio(spec.name, ratio)] = exact(
                (img + txt) / (base_img + base_txt), "x")
            out.points.append({"flops": spec.name, "patch_dropout": ratio, "image_fwd_flops": img,
                               "text_fwd_flops": txt})
    for spec in params.param_counts:
        model = build(_cfg(params, spec.model), "meta")
        visual = sum(p.numel() for p in model.visual.parameters())
        visual_proj = model.visual.proj.numel() if model.visual.proj is not None else 0
        text = sum(p.numel() for n, p in model.named_parameters()
                   if not n.startswith("visual.") and n != "logit_scale")
        text_proj = model.text_projection.numel() if model.text_projection is not None else 0
        total = sum(p.numel() for p in model.parameters())
        if not spec.include_projections:
            visual, text = visual - visual_proj, text - text_proj
        for part, count in zip(names.PARAM_PARTS, (visual, text, total)):
            out.metrics[names.param_count(part, spec.name)] = exact(count / 1e6, "M")
        out.points.append({"params": spec.name, "vision": visual, "text": text, "total": total,
                           "include_projections": spec.include_projections})
    return out
