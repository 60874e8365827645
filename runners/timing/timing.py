"""The one timing recipe (after timm's benchmark.py and nanoGPT's bench.py), written once.

Warm up every arm, size each arm's timed block so it runs >= min_block_s, then run interleaved
rounds with the arm order rotated each round (so drift and neighbours hit every arm alike), and
synchronize the device around every timed block.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

Step = Callable[[], None]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(step: Step, n_steps: int, device: torch.device) -> float:
    """Seconds per step over one block of n_steps."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / n_steps


def steps_per_block(step: Step, min_block_s: float, device: torch.device) -> int:
    """Steps needed for a block of >= min_block_s (10% margin), from one timed step."""
    per_step = time_block(step, 1, device)
    return max(1, math.ceil(1.1 * min_block_s / max(per_step, 1e-9)))


def rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names)
    return names[k:] + names[:k]


def interleaved_rounds(steps: dict[str, Step], *, rounds: int, min_block_s: float,
                       warmup_steps: int, device: torch.device,
                       after_block: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per step, per arm and round: {arm: [s_round0, s_round1, ...]}. `after_block` (a
    progress bar) is called between timed blocks, never inside one."""
    names = list(steps)
    for name in names:
        for _ in range(warmup_steps):
            steps[name]()
    synchronize(device)
    n_steps = {name: steps_per_block(steps[name], min_block_s, device) for name in names}
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotated(names, r):
            out[name].append(time_block(steps[name], n_steps[name], device))
            if after_block is not None:
                after_block()
    return out
