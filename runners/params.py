"""Parameter schemas of the runners (pure: importable without torch, so `validate` stays light)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cliprepro.spec import Strict


class Arm(Strict):
    """One sweep point of the throughput runner; unset fields inherit the run's."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    patch_dropout: float = Field(0.0, ge=0, lt=1)
    batch_size: int | None = Field(None, ge=1)


class ThroughputParams(Strict):
    model: str = Field(description="open_clip config name, official or from model_configs/")
    image_size: int | None = Field(None, ge=8)
    context_length: int | None = Field(None, ge=2)
    modes: list[Literal["step", "image_tower"]] = Field(min_length=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    batch_size: int = Field(ge=1)
    arms: list[Arm] = Field(min_length=2, description="the first arm is the baseline")
    rounds: int = Field(9, ge=9, description="interleaved rounds (>= 9)")
    min_block_s: float = Field(1.0, ge=1.0, description="each timed block runs >= this long")
    warmup_steps: int = Field(2, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _unique_arms(self) -> "ThroughputParams":
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        return self


class FlopsSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="suffix of the metric names")
    model: str
    patch_dropouts: list[float] = Field(min_length=1)


class ParamCountSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    model: str


class ArchitectureParams(Strict):
    flops: list[FlopsSpec] = []
    param_counts: list[ParamCountSpec] = []
    text_context_length: int | None = Field(None, ge=2, description="override every model's")
    text_vocab_size: int | None = Field(None, ge=2, description="override every model's")
