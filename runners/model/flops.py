"""Forward FLOPs of a model's towers, counted by torch's FlopCounterMode on the meta device.

Meta tensors need no memory, so full-size models (ViT-L/16, bigG) are counted on any CPU. The
model is in train mode, so PatchDropout really drops tokens, as in training.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from runners.model.models import build


def tower_flops(cfg: dict) -> tuple[int, int]:
    """(image forward FLOPs, text forward FLOPs) per sample."""
    model = build(cfg, "meta").train()
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    side = v["image_size"] if isinstance(v["image_size"], int) else v["image_size"][0]
    with torch.device("meta"):
        image = torch.empty(1, 3, side, side)
        text = torch.zeros(1, t["context_length"], dtype=torch.long)
        with FlopCounterMode(display=False) as counter:
            model.encode_image(image)
        image_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.encode_text(text)
        text_flops = counter.get_total_flops()
    return int(image_flops), int(text_flops)
