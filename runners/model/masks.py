"""CLIPA's grid and block image masks (open_clip ships only random PatchDropout).

CLIPA (docs/clipa.md L33-35): grid mask "preserve one patch in each 2 x 2 grid window"; block mask
"keep a single block and remove other patches"; neither has an implementation upstream. Pure index
functions plus `PatchSelect`, a drop-in for open_clip's `VisionTransformer.patch_dropout` (same
input and output: [batch, 1 + patches, width] with the class token first; active only in training,
like PatchDropout).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

MaskKind = Literal["random", "grid", "block"]


def grid_keep_indices(h: int, w: int, offset: tuple[int, int] = (0, 0), window: int = 2) -> torch.Tensor:
    """Row-major indices of one patch per window x window cell, at `offset` inside each cell."""
    if h % window or w % window:
        raise ValueError(f"grid mask needs a patch grid divisible by {window}, got {h}x{w}")
    rows = torch.arange(offset[0], h, window)
    cols = torch.arange(offset[1], w, window)
    return (rows[:, None] * w + cols[None, :]).flatten()


def block_shape(h: int, w: int, keep_ratio: float) -> tuple[int, int]:
    """The block closest to keep_ratio of the patches (equal budgets first), then the one whose
    aspect is closest to the grid's (>= 1 x 1)."""
    area = max(1, round(h * w * keep_ratio))

    def cost(bh: int) -> tuple[int, float]:
        bw = min(w, max(1, round(area / bh)))
        return abs(bh * bw - area), abs(math.log((bh / bw) / (h / w)))

    bh = min(range(1, h + 1), key=cost)
    return bh, min(w, max(1, round(area / bh)))


def block_keep_indices(h: int, w: int, block: tuple[int, int], top: int, left: int) -> torch.Tensor:
    """Row-major indices of the block of size `block` whose top-left patch is (top, left)."""
    bh, bw = block
    if not (0 <= top <= h - bh and 0 <= left <= w - bw):
        raise ValueError(f"block {bh}x{bw} at ({top}, {left}) leaves the {h}x{w} grid")
    rows = torch.arange(top, top + bh)
    cols = torch.arange(left, left + bw)
    return (rows[:, None] * w + cols[None, :]).flatten()


def kept_patches(kind: MaskKind, h: int, w: int, drop_ratio: float) -> int:
    """How many patches a mask keeps (the class token comes on top)."""
    if kind == "grid":
        grid_keep_indices(h, w)  # checks divisibility
        return (h // 2) * (w // 2)
    if kind == "block":
        bh, bw = block_shape(h, w, 1 - drop_ratio)
        return bh * bw
    return h * w if drop_ratio == 0 else max(1, int(h * w * (1 - drop_ratio)))  # open_clip's rule


def classify_kept(positions: list[list[int]], h: int, w: int) -> str:
    """Which mask kept these patch positions (one list per sample, row-major on an h x w grid):
    "all"; "grid" (exactly one patch per 2x2 window, in every sample); "block" (one contiguous
    rectangle, in every sample); else "random". Counts alone cannot tell the three masks apart."""
    n = h * w
    if all(sorted(p) == list(range(n)) for p in positions):
        return "all"

    def is_grid(p: list[int]) -> bool:
        cells = {((i // w) // 2, (i % w) // 2) for i in p}
        return h % 2 == 0 and w % 2 == 0 and len(p) == n // 4 == len(cells)

    def is_block(p: list[int]) -> bool:
        rows, cols = [i // w for i in p], [i % w for i in p]
        area = (max(rows) - min(rows) + 1) * (max(cols) - min(cols) + 1)
        return len(set(p)) == len(p) == area

    if positions and all(is_grid(p) for p in positions):
        return "grid"
    if positions and all(is_block(p) for p in positions):
        return "block"
    return "random"


def planned_mask(kind: MaskKind, drop_ratio: float | None) -> str:
    """What classify_kept must see in training for a stage's mask settings."""
    return kind if drop_ratio else "all"


class PatchSelect(nn.Module):
    """Keep a grid or block of patch tokens per sample (random cell offset / block position)."""

    def __init__(self, kind: Literal["grid", "block"], grid: tuple[int, int], drop_ratio: float):
        super().__init__()
        self.kind, self.grid = kind, grid
        h, w = grid
        if kind == "grid" and drop_ratio != 0.75:
            raise ValueError("a 2x2 grid mask drops exactly 75% of the patches")
        self.block = block_shape(h, w, 1 - drop_ratio) if kind == "block" else None
        self.keep = kept_patches(kind, h, w, drop_ratio)

    def sample_indices(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = self.grid
        if self.kind == "grid":
            offsets = torch.randint(0, 2, (batch, 2), generator=generator)
            return torch.stack([grid_keep_indices(h, w, (int(a), int(b))) for a, b in offsets])
        assert self.block is not None
        bh, bw = self.block
        tops = torch.randint(0, h - bh + 1, (batch,), generator=generator)
        lefts = torch.randint(0, w - bw + 1, (batch,), generator=generator)
        return torch.stack([block_keep_indices(h, w, self.block, int(t), int(l))
                            for t, l in zip(tops, lefts)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        cls_token, patches = x[:, :1], x[:, 1:]
        idx = self.sample_indices(x.shape[0]).to(x.device)
        kept = patches.gather(1, idx[..., None].expand(-1, -1, patches.shape[-1]))
        return torch.cat((cls_token, kept), dim=1)


def install(model: nn.Module, kind: MaskKind, drop_ratio: float) -> None:
    """Replace an open_clip model's vision patch_dropout by a grid / block mask (random: unchanged)."""
    if kind == "random":
        return
    visual = model.visual
    h, w = visual.grid_size
    visual.patch_dropout = PatchSelect(kind, (h, w), drop_ratio).train(visual.training)
