"""Paper-scale recipes as torchrun command lines, built from suite fields (pure).

The global batch and lr = lr_per_256 x global / 256 are the suite's; the per-GPU batch is derived
from the GPU count, so changing `gpus` keeps the global batch and the learning rate.
"""
from __future__ import annotations

import shlex

from cliprepro.errors import InputError
from runners.schema.paper import PaperRecipe, PaperStage


def per_gpu_batch(stage: PaperStage, gpus: int) -> int:
    if stage.global_batch % gpus:
        raise InputError("suite", f"stages.{stage.name}.global_batch",
                         f"{stage.global_batch} is not divisible by gpus={gpus}")
    return stage.global_batch // gpus


def lr(stage: PaperStage) -> float:
    return float(f"{stage.lr_per_256 * stage.global_batch / 256:.6g}")


def stage_argv(recipe: PaperRecipe, stage: PaperStage, init: str | None) -> list[str]:
    argv = ["--model", stage.model, "--train-data", recipe.train_data,
            "--batch-size", str(per_gpu_batch(stage, recipe.gpus)), "--lr", f"{lr(stage):g}",
            "--warmup", str(stage.warmup), "--epochs", str(stage.epochs)]
    if stage.image_size:
        argv += ["--force-image-size", str(stage.image_size)]
    if stage.patch_dropout is not None:
        argv += ["--force-patch-dropout", f"{stage.patch_dropout:g}"]
    if stage.train_num_samples:
        argv += ["--train-num-samples", str(stage.train_num_samples)]
    if stage.aug_cfg:
        argv += ["--aug-cfg", *(f"{k}={v}" for k, v in stage.aug_cfg.items())]
    if init:
        argv += ["--pretrained", init]
    if recipe.max_loss is not None:  # ours (runners.upstream.divergence); NaN stops a run regardless
        argv += ["--cliprepro-max-loss", f"{recipe.max_loss:g}"]
    return argv + list(recipe.common_flags) + ["--name", stage.name]


def torchrun_lines(recipe: PaperRecipe) -> list[str]:
    """One line per stage; a stage with an init stage starts from that stage's last checkpoint."""
    lines = []
    for stage in recipe.stages:
        src = recipe.init_of(stage)
        init = f"logs/{src.name}/checkpoints/epoch_{src.epochs}.pt" if src else None
        argv = ["torchrun", "--nproc_per_node", str(recipe.gpus), "-m", "runners.upstream.openclip_main",
                *stage_argv(recipe, stage, init)]
        lines.append(shlex.join(argv))
    return lines


def describe(recipe: PaperRecipe) -> str:
    out = []
    for stage, line in zip(recipe.stages, torchrun_lines(recipe)):
        samples = f"{stage.train_num_samples:,} samples" if stage.train_num_samples else \
            f"{stage.epochs} epoch(s) of the training set"
        out += [f"  stage {stage.name} (mirrors {stage.script}): {recipe.gpus} GPUs, global batch "
                f"{stage.global_batch:,} = {per_gpu_batch(stage, recipe.gpus)} per GPU, lr {lr(stage):g} "
                f"(= {stage.lr_per_256:g} x {stage.global_batch} / 256), warmup {stage.warmup} steps, {samples}",
                f"    {line}"]
    return "\n".join(out)
