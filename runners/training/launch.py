"""Launchers for training a published recipe: one process, torchrun on one node, a SLURM batch
script for many, or DeepSpeed; and the plan they share (pure: suite fields and a cluster config in,
text out).

The plan says, per stage: GPUs, the global batch (the paper's, never changed), the per-GPU batch
derived from it, gradient accumulation when the cluster's declared per-GPU memory limit forces it
(open_clip_train's --accum-freq: the global batch and lr stay the paper's), samples seen, GPU-hours
from a measured throughput (a gpu-scale record of the same model on the same device class) or
"unknown" with the reason, and the cost from the cluster's declared price.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from cliprepro.errors import InputError
from cliprepro.spec import Strict, parse, read_yaml
from runners.schema.paper import PaperRecipe, PaperStage
from runners.training.recipe import lr, stage_argv

LAUNCHERS = ("local", "torchrun", "slurm", "deepspeed")
ENTRY = ["-m", "runners.upstream.openclip_main"]  # open_clip_train's main with this repo's fixes


class Cluster(Strict):
    """Where a recipe runs (a YAML file: --cluster, else $CLIPREPRO_CLUSTER)."""
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    gpu: str = Field("A100", description="the device class, as a record's device_class names it (substring)")
    partition: str | None = None
    account: str | None = None
    time_limit: str = Field("72:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$", description="SLURM --time")
    cpus_per_task: int = Field(8, ge=1)
    activate: str = Field("source .venv/bin/activate", description="the line that makes the environment")
    container: str | None = Field(None, description="srun --container-image (pyxis), if any")
    max_batch_per_gpu: int | None = Field(None, ge=1, description="largest per-GPU batch that fits (None: unknown)")
    gpu_memory_gib: float | None = Field(None, gt=0, description=(
        "memory of the GPU max_batch_per_gpu was found on: preflight refuses GPUs with less"))
    usd_per_gpu_hour: float | None = Field(None, gt=0)
    price_source: str = ""

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def load_cluster(path: Path | None) -> Cluster:
    if path is None:
        return Cluster()
    if not path.is_file():
        raise InputError(path, "--cluster", "no such file")
    return parse(path, Cluster, read_yaml(path) or {})


@dataclass(frozen=True)
class StagePlan:
    stage: str
    gpus: int
    global_batch: int
    per_gpu_batch: int
    accum_freq: int  # micro-batches per step; per_gpu_batch / accum_freq go through at once
    samples: int | None  # None: epochs of a dataset whose size the recipe does not give
    gpu_hours: float | None
    why_unknown: str = ""

    @property
    def micro_batch(self) -> int:
        return self.per_gpu_batch // self.accum_freq


def accumulation(per_gpu: int, limit: int | None) -> int:
    """The fewest micro-batches per step that fit `limit` and divide the per-GPU batch evenly."""
    if limit is None or per_gpu <= limit:
        return 1
    return next(k for k in range(math.ceil(per_gpu / limit), per_gpu + 1) if per_gpu % k == 0 and per_gpu // k <= limit)


def plan(recipe: PaperRecipe, cluster: Cluster, rate_of) -> list[StagePlan]:
    """`rate_of(stage, gpu)` -> (samples/s per GPU, '') or (None, why)."""
    out = []
    for stage in recipe.stages:
        if stage.global_batch % cluster.gpus:
            raise InputError("--cluster", "nodes x gpus_per_node",
                             f"{cluster.gpus} GPUs do not divide stage {stage.name}'s global batch {stage.global_batch}")
        per_gpu = stage.global_batch // cluster.gpus
        per_epoch = stage.train_num_samples or recipe.epoch_samples
        samples = stage.epochs * per_epoch if per_epoch else None
        rate, why = rate_of(stage, cluster.gpu)
        hours = samples / rate / 3600 if (samples and rate) else None
        if samples is None:
            why = f"{stage.epochs} epoch(s) of a dataset whose size the recipe does not give (epoch_samples)"
        out.append(StagePlan(stage.name, cluster.gpus, stage.global_batch, per_gpu,
                             accumulation(per_gpu, cluster.max_batch_per_gpu), samples, hours, why))
    return out


def _argv(recipe: PaperRecipe, stage: PaperStage, p: StagePlan) -> list[str]:
    src = recipe.init_of(stage)
    init = f"logs/{src.name}/checkpoints/epoch_{src.epochs}.pt" if src else None
    argv = stage_argv(recipe, stage, init)
    # the plan's per-GPU batch: the global batch over this cluster's GPUs (not the recipe's count),
    # in micro-batches that fit when memory forces it
    argv[argv.index("--batch-size") + 1] = str(p.micro_batch)
    if p.accum_freq > 1:
        argv += ["--accum-freq", str(p.accum_freq)]
    return argv + ["--resume", "latest"]  # a requeued or re-run stage continues where it stopped


def commands(launcher: str, recipe: PaperRecipe, cluster: Cluster, plans: list[StagePlan]) -> list[str]:
    """One command line per stage (slurm: the srun lines its script runs)."""
    lines = []
    for stage, p in zip(recipe.stages, plans):
        argv = _argv(recipe, stage, p)
        if launcher == "local":
            line = ["python", *ENTRY, *argv]
        elif launcher == "torchrun":
            line = ["torchrun", "--nnodes", str(cluster.nodes), "--nproc_per_node", str(cluster.gpus_per_node), *ENTRY, *argv]
        elif launcher == "slurm":
            image = ["--container-image", cluster.container] if cluster.container else []
            line = ["srun", "--cpu_bind=v", "--accel-bind=gn", *image, "python", "-u", *ENTRY, *argv]
        else:
            raise InputError("--launcher", "--launcher", f"{launcher!r} needs a recipe with a DeepSpeed loop; "
                             f"open_clip_train has none (allowed here: local, torchrun, slurm)")
        lines.append(shlex.join(line))
    return lines


def sbatch_script(suite: str, recipe: PaperRecipe, cluster: Cluster, plans: list[StagePlan]) -> str:
    """One job running every stage in order; requeued on preemption, each stage resuming from its
    latest checkpoint (a finished stage resumes at its end and trains nothing)."""
    head = ["#!/bin/bash", f"#SBATCH --job-name=cliprepro-{suite}", f"#SBATCH --nodes={cluster.nodes}",
            f"#SBATCH --ntasks-per-node={cluster.gpus_per_node}", f"#SBATCH --gpus-per-node={cluster.gpus_per_node}",
            f"#SBATCH --cpus-per-task={cluster.cpus_per_task}", f"#SBATCH --time={cluster.time_limit}",
            "#SBATCH --requeue", "#SBATCH --open-mode=append", f"#SBATCH --output=logs/{suite}-%j.out"]
    head += [f"#SBATCH --partition={cluster.partition}"] * bool(cluster.partition)
    head += [f"#SBATCH --account={cluster.account}"] * bool(cluster.account)
    body = ["set -euo pipefail", 'cd "$SLURM_SUBMIT_DIR"  # sbatch from the repo root', cluster.activate,
            'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
            "export MASTER_PORT=29500", *_gpu_check(cluster), *commands("slurm", recipe, cluster, plans)]
    return "\n".join(head + [""] + body) + "\n"


def _gpu_check(cluster: Cluster) -> list[str]:
    """The job's first step: its GPUs checked on its first node (runners.training.preflight)."""
    if cluster.gpu == "cpu":  # CPU processes: nothing to check
        return []
    memory = f" {cluster.gpu_memory_gib:g}" if cluster.gpu_memory_gib else ""
    return [f"python -m runners.training.preflight {cluster.gpus_per_node}{memory}"]


def describe(recipe: PaperRecipe, cluster: Cluster, plans: list[StagePlan]) -> str:
    lines = [f"plan: {cluster.nodes} node(s) x {cluster.gpus_per_node} {cluster.gpu} = {cluster.gpus} GPUs"]
    total_h, known = 0.0, True
    for stage, p in zip(recipe.stages, plans):
        accum = f" in {p.accum_freq} micro-batches of {p.micro_batch}" if p.accum_freq > 1 else ""
        hours = f"{p.gpu_hours:,.0f} GPU-hours" if p.gpu_hours is not None else f"GPU-hours unknown ({p.why_unknown})"
        samples = f"{p.samples:,} samples" if p.samples else f"{stage.epochs} epoch(s)"
        lines.append(f"  {stage.name}: global batch {p.global_batch:,} = {p.per_gpu_batch} per GPU{accum}, "
                     f"lr {lr(stage):g}, {samples}, {hours}")
        known = known and p.gpu_hours is not None
        total_h += p.gpu_hours or 0.0
    if not known:
        lines.append("  total: unknown (a stage's GPU-hours are unknown)")
    elif cluster.usd_per_gpu_hour is None:
        lines.append(f"  total: {total_h:,.0f} GPU-hours; cost unknown (no usd_per_gpu_hour in the cluster config)")
    else:
        lines.append(f"  total: {total_h:,.0f} GPU-hours = ${total_h * cluster.usd_per_gpu_hour:,.0f} at "
                     f"${cluster.usd_per_gpu_hour:g}/GPU-hour ({cluster.price_source or 'price source not given'})")
    return "\n".join(lines)
