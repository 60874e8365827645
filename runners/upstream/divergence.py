"""Stop a training run that diverges: a pure check of one loss value, and a thin wrapper around
open_clip's loss that applies it at every step.

open_clip_train trains on through a NaN loss (every later step is NaN, and the run "completes"
into a checkpoint of NaNs that evaluates at chance, which would read as `not_reproduced`). The
guard raises `Diverged` at the first non-finite loss, or the first loss above a declared bound,
and runners.upstream.openclip_main turns it into exit status DIVERGED; the run's record is then an
`error` that says where it diverged. The wrapper returns the loss unchanged, so a run that does
not diverge trains exactly as before (the training-path fingerprint does not move).
"""
from __future__ import annotations

import math

import torch

DIVERGED = 4  # the trainer's exit status for a stopped divergence


class Diverged(RuntimeError):
    """Raised in the trainer at the first diverged step."""


def divergence(loss: float, max_loss: float | None) -> str:
    """Why this loss value means the run diverged ('' when it does not)."""
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if max_loss is not None and loss > max_loss:
        return f"loss {loss:.4g} is past the declared bound max_loss {max_loss:g}"
    return ""


class DivergenceGuard(torch.nn.Module):
    """open_clip's loss (a module without parameters), checked after every call. `calls` counts
    loss evaluations in this process (one per step without gradient accumulation)."""

    def __init__(self, loss: torch.nn.Module, max_loss: float | None = None):
        super().__init__()
        self.loss, self.max_loss, self.calls = loss, max_loss, 0

    def forward(self, *args, **kwargs):
        out = self.loss(*args, **kwargs)
        total = sum(out.values()) if isinstance(out, dict) else out
        self.calls += 1
        # one device sync per step (a GPU step waits for its loss); nothing changes what is computed
        why = divergence(float(total.detach()), self.max_loss)
        if why:
            raise Diverged(f"training diverged at loss evaluation {self.calls} of this process: {why}")
        return out
