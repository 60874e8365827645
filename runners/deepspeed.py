"""DeepSpeed runner: a published DeepSpeed recipe (EVA-CLIP's) as a plan. Pure: recipe fields in,
deepspeed_config.json and launch lines out; nothing is trained here.

The lines run the paper's own trainer (EVA-CLIP `rei/training/main.py`, which builds per-tower
parameter groups with their lr, weight decay and layer decay, and writes its DeepSpeed config
itself with --enable-deepspeed). The config printed is the one those settings give, for review:
LAMB with every setting explicit, ZeRO stage and bucket, gradient clipping, fp16 or bf16. `run`
measures nothing: every finding is skipped, saying what it needs (the GPUs, the trainer, the data
and the MIM-trained image tower). The CPU-tested DeepSpeed loop of this project is
runners/training/zero.py (ZeRO-1 + AdamW, bit-identical to torch's AdamW).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from runners.schema.deepspeed import DeepSpeedRecipe
from runners.schema.output import Output

TRAINER = "training/main.py"  # in EVA-CLIP/rei of github.com/baaivision/EVA


def deepspeed_config(r: DeepSpeedRecipe) -> dict:
    """The DeepSpeed config for these settings (the fields of EVA's shipped deepspeed_config.json)."""
    return {
        "train_batch_size": r.global_batch,
        "train_micro_batch_size_per_gpu": r.per_gpu_batch,
        "steps_per_print": 1000,
        "optimizer": {"type": "Lamb", "params": {
            "lr": r.lr, "weight_decay": r.wd, "betas": list(r.lamb.betas), "eps": r.lamb.eps,
            "max_coeff": r.lamb.max_coeff, "min_coeff": r.lamb.min_coeff}},
        "gradient_clipping": r.grad_clip_norm,
        "fp16": {"enabled": r.precision == "fp16", "loss_scale": 0,
                 "initial_scale_power": r.initial_scale_power, "loss_scale_window": 1000,
                 "hysteresis": 2, "min_loss_scale": 1},
        "bf16": {"enabled": r.precision == "bf16"},
        "zero_optimization": {"stage": r.zero_stage, "reduce_bucket_size": r.reduce_bucket_size},
    }


def trainer_flags(r: DeepSpeedRecipe) -> list[str]:
    flags = ["--model", r.model, "--train-data", r.train_data, "--dataset-resampled",
             "--train-num-samples", str(r.epoch_samples), "--batch-size", str(r.per_gpu_batch),
             "--epochs", str(r.epochs), "--warmup", str(r.warmup), "--lr", f"{r.lr:g}",
             "--visual-lr", f"{r.visual_lr:g}", "--text-lr", f"{r.text_lr:g}", "--wd", f"{r.wd:g}",
             "--visual-wd", f"{r.visual_wd:g}", "--text-wd", f"{r.text_wd:g}", "--ld", f"{r.ld:g}",
             "--visual-ld", f"{r.visual_ld:g}", "--text-ld", f"{r.text_ld:g}",
             "--grad-clip-norm", f"{r.grad_clip_norm:g}", "--seed", str(r.seed), "--optimizer", "lamb",
             "--zero-stage", str(r.zero_stage), "--enable-deepspeed"]
    if r.pretrained_image:
        flags += ["--pretrained-image", r.pretrained_image]
    if r.patch_dropout:
        flags += ["--force-patch-dropout", f"{r.patch_dropout:g}"]
    if r.precision == "bf16":  # the trainer's default config is fp16
        flags += ["--precision", "bf16"]
    return flags + list(r.extra_flags)


def launch_line(r: DeepSpeedRecipe) -> str:
    """One line per node (NODE_RANK 0..nodes-1), as the EVA-CLIP README launches it."""
    launcher = (f"python -m torch.distributed.launch --nproc_per_node={r.gpus_per_node} --nnodes={r.nodes} "
                "--node_rank=$NODE_RANK --master_addr=$MASTER_ADDR --master_port=12355 --use_env")  # set per node
    return f"{launcher} {TRAINER} {shlex.join(trainer_flags(r))}"


def plan(params: DeepSpeedRecipe, scale: str) -> str:
    r = params
    samples = r.epochs * r.epoch_samples
    lines = [f"DeepSpeed recipe ({r.script}); runs with the paper's trainer, not here:",
             f"  {r.nodes} node(s) x {r.gpus_per_node} GPUs = {r.gpus}; per-GPU batch {r.per_gpu_batch}, "
             f"global {r.global_batch:,}; {r.epochs} x {r.epoch_samples:,} = {samples:,} samples "
             f"({samples // r.global_batch:,} steps)",
             f"  lr {r.lr:g} (image tower {r.visual_lr:g}, text {r.text_lr:g}); layer decay {r.ld:g} "
             f"(image {r.visual_ld:g}, text {r.text_ld:g}); wd {r.wd:g}; clip {r.grad_clip_norm:g}; "
             f"patch dropout {r.patch_dropout:g}; {r.precision}; ZeRO stage {r.zero_stage}",
             f"  LAMB: betas {list(r.lamb.betas)}, eps {r.lamb.eps:g}, trust ratio clamped to "
             f"[{r.lamb.min_coeff:g}, {r.lamb.max_coeff:g}]" + (f" ({r.lamb.noted})" if r.lamb.noted else ""),
             "  LAMB goes through ZeRO's flattened groups in DeepSpeed: its per-layer trust ratio is then "
             "per flattened group (the proxy rows use timm's Lamb without ZeRO)",
             f"  per node: {launch_line(r)}",
             "  deepspeed_config.json:", *("    " + x for x in json.dumps(deepspeed_config(r), indent=2).splitlines())]
    if r.ablation:
        lines.append("  ablation rows, each on the row before:")
        lines += [f"    {a.name}: {a.adds}{' (' + shlex.join(a.flags) + ')' if a.flags else ''}" for a in r.ablation]
    return "\n".join(lines)


def run(params: DeepSpeedRecipe, scale: str, build_dir: Path) -> Output:
    from runners import declared_metrics

    tower = f", the MIM-trained image tower {params.pretrained_image}" if params.pretrained_image else ""
    need = (f"a plan, not run here: needs {params.gpus} GPUs ({params.nodes} nodes x {params.gpus_per_node}), "
            f"EVA-CLIP's trainer ({TRAINER}) and its training data{tower}; --dry-run prints the lines and the "
            "DeepSpeed config")
    return Output(skip={m: need for m in declared_metrics(params)})
