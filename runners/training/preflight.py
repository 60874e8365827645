"""Checks before a published recipe is launched: the training shards exist and can be read, there
are GPUs enough (and memory for the per-GPU batch the cluster file says fits), and the disk takes
the checkpoints. `problems` is pure (facts in, reasons out); `gather` reads the facts here.

Under SLURM the GPUs are checked inside the job, on its nodes (`python -m
runners.training.preflight GPUS_PER_NODE [MEMORY_GIB]`, the script's first line): the submitting
host is often a login node without them.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from runners.training import shards

CPU = "cpu"  # a cluster whose `gpu` is cpu runs its processes on CPUs (gloo): a functional check only
BYTES_PER_PARAM = 4 + 8  # an fp32 checkpoint: the weights and AdamW's two moments (open_clip_train saves both)


@dataclass(frozen=True)
class Facts:
    gpus: int
    gpu_memory_gib: tuple[float, ...]
    free_disk_bytes: int


def gather(logs: Path) -> Facts:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    memory = tuple(torch.cuda.get_device_properties(i).total_memory / 2**30 for i in range(count))
    folder = logs
    while not folder.exists():  # the logs folder may not exist yet: its nearest existing parent
        folder = folder.parent
    return Facts(count, memory, shutil.disk_usage(folder).free)


def shard_problems(pattern: str) -> list[str]:
    """Unreadable or missing shards of a webdataset pattern; remote sources (a URL, pipe:) are not
    checked here."""
    missing, total = shards.unreadable(pattern)
    if not missing:
        return []
    return [f"train_data: {len(missing)} of {total} shard(s) missing or unreadable, first {missing[0]}"]


def checkpoint_bytes(model: str) -> int:
    """One checkpoint of `model` (counted on the meta device: no memory, any size)."""
    from runners.model.models import build, model_config

    params = sum(p.numel() for p in build(model_config(model), "meta").parameters())
    return params * BYTES_PER_PARAM


def gpu_problems(need: int, memory_gib: float | None, facts: Facts) -> list[str]:
    """Fewer GPUs than one node needs, or GPUs with less memory than the one the cluster file's
    max_batch_per_gpu was found on."""
    if facts.gpus < need:
        return [f"GPUs: the plan needs {need} per node, {facts.gpus} visible here"]
    small = [m for m in facts.gpu_memory_gib[:need] if memory_gib and m < memory_gib]
    if small:
        return [f"GPU memory: max_batch_per_gpu was declared for {memory_gib:g} GiB GPUs; "
                f"{len(small)} visible have {min(small):.1f} GiB"]
    return []


def problems(train_data: str, need_gpus: int | None, memory_gib: float | None,
             checkpoints: list[tuple[str, int, int]], logs: Path, facts: Facts) -> list[str]:
    """Every reason not to launch. `need_gpus` None: not checked here (SLURM: in the job);
    `checkpoints`: (stage, epochs saved, bytes each)."""
    out = shard_problems(train_data)
    if need_gpus is not None:
        out += gpu_problems(need_gpus, memory_gib, facts)
    need = sum(n * size for _, n, size in checkpoints)
    if need > facts.free_disk_bytes:
        each = ", ".join(f"{s}: {n} x {size / 2**30:.2f} GiB" for s, n, size in checkpoints)
        out.append(f"disk: the checkpoints need {need / 2**30:.1f} GiB ({each}); {logs} has "
                   f"{facts.free_disk_bytes / 2**30:.1f} GiB free")
    return out


def main(argv: list[str]) -> int:
    """In a SLURM job, on its first node: exit 2 with the reason when the GPUs do not match."""
    need = int(argv[0])
    memory = float(argv[1]) if len(argv) > 1 else None
    found = gpu_problems(need, memory, gather(Path.cwd()))
    for line in found:
        print(f"preflight: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
