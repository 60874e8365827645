"""The machine's pace: one fixed CPU training step, timed with the one timing recipe.

A suite's CPU `runtime_s` is its wall time on the machine it was declared on, whose pace is
cliprepro.runflow.REFERENCE_PACE_MS. The same code has run at different speeds on shared 2-core
CI machines (a main job of 16 min in November, 41 and 57 min on 2026-12-01), so the runtime guard
widens its limit by how much slower this machine's pace is (never tighter on a faster machine): a
suite that grows is still an error, a slow machine is not.
"""
from __future__ import annotations

import statistics

import torch

from runners.timing.timing import interleaved_rounds


def pace_ms(rounds: int = 7, min_block_s: float = 0.1) -> float:
    """Median ms per forward + backward of two small transformer layers (the proxy towers' width),
    on one thread as each proxy trainer runs; about 1 s of work. Seeded in a forked RNG: the same
    workload every time, and the caller's random state untouched."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            layers = torch.nn.Sequential(*[torch.nn.TransformerEncoderLayer(
                192, 3, 768, dropout=0.0, batch_first=True) for _ in range(2)])
            x = torch.randn(2, 65, 192)

        def step() -> None:
            layers.zero_grad(set_to_none=True)
            layers(x).square().mean().backward()

        per_step_s = interleaved_rounds({"pace": step}, rounds=rounds, min_block_s=min_block_s,
                                        warmup_steps=2, device=torch.device("cpu"))["pace"]
    finally:
        torch.set_num_threads(threads)
    return 1000 * statistics.median(per_step_s)
