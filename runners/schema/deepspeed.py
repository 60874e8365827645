"""Parameters of the `deepspeed` runner: a published DeepSpeed recipe (EVA-CLIP's) as a plan only
(pure, no torch). The trainer is the paper's own (EVA-CLIP's `training/main.py`, a fork of
open_clip with a DeepSpeed path); this project generates its deepspeed_config.json and launch
lines and never runs them (runners/deepspeed.py).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from cliprepro.spec import Strict


class Lamb(Strict):
    """LAMB as DeepSpeed's config names it; every setting explicit (the trainer passes none)."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    max_coeff: float = Field(10.0, gt=0, description="upper clamp of the per-layer trust ratio")
    min_coeff: float = Field(0.01, ge=0, description="lower clamp of the per-layer trust ratio")
    noted: str = Field("", description="other values on record (e.g. a summary's beta2), not used")


class Ablation(Strict):
    """One row of the paper's ablation, added on the row before: what it changes in the lines."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    adds: str = Field(description="the change, in words")
    flags: list[str] = Field(description="trainer flags this row adds or overrides")


class DeepSpeedRecipe(Strict):
    """A DeepSpeed ZeRO recipe for a multi-node CLIP training (EVA-CLIP README commands)."""
    script: str = Field(description="the published command this mirrors, with its source lines")
    model: str = Field(description="the trainer's model name (EVA-CLIP's own configs, not open_clip's)")
    pretrained_image: str | None = Field(None, description="MIM-trained image tower the trainer starts from")
    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(8, ge=1)
    per_gpu_batch: int = Field(ge=1, description="--batch-size (the global batch is derived)")
    epochs: int = Field(ge=1)
    epoch_samples: int = Field(ge=1, description="--train-num-samples (with --dataset-resampled: one 'epoch')")
    warmup: int = Field(ge=0)
    lr: float = Field(gt=0)
    visual_lr: float = Field(gt=0)
    text_lr: float = Field(gt=0)
    wd: float = Field(ge=0)
    visual_wd: float = Field(ge=0)
    text_wd: float = Field(ge=0)
    ld: float = Field(gt=0, le=1, description="layer decay of lr (1.0: none)")
    visual_ld: float = Field(gt=0, le=1)
    text_ld: float = Field(gt=0, le=1)
    grad_clip_norm: float = Field(gt=0)
    patch_dropout: float = Field(0.0, ge=0, lt=1)
    precision: Literal["fp16", "bf16"] = Field(description="the trainer writes fp16 unless --precision bf16")
    zero_stage: Literal[0, 1, 2, 3] = 1
    reduce_bucket_size: int = Field(500_000_000, ge=1)
    initial_scale_power: int = Field(16, ge=0, description="fp16 dynamic loss scale starts at 2**this")
    lamb: Lamb = Lamb()
    seed: int = 0
    extra_flags: list[str] = Field([], description="further trainer flags, as published")
    train_data: str = "/path/to/laion-2b"
    ablation: list[Ablation] = Field([], description="the paper's ablation rows on this recipe, in order")

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def global_batch(self) -> int:
        return self.per_gpu_batch * self.gpus
