"""Parameter schemas of the runners (pure: importable without torch, so `validate` stays light):
the throughput and architecture runners' here, the train runner's in train_params.py (a published
recipe: paper.py), released weights' in released.py, DeepSpeed's in deepspeed.py; `params_schema`
picks one."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cliprepro.spec import Strict
from runners.schema.deepspeed import DeepSpeedRecipe
from runners.schema.model_names import ModelName
from runners.schema.paper import PaperRecipe
from runners.schema.released import ReleasedParams
from runners.schema.train_params import TrainParams


class Arm(Strict):
    """One sweep point of the throughput runner; unset fields inherit the run's."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    baseline: str | None = Field(None, description=(
        "arm this one is compared with; 'none' for a reference arm (default: the first arm)"))
    model: ModelName | None = None
    patch_dropout: float = Field(0.0, ge=0, lt=1, description="fraction of image patches dropped")
    mask_kind: Literal["random", "grid", "block"] = "random"
    image_size: int | None = Field(None, ge=8, description="resize: fewer patches")
    context_length: int | None = Field(None, ge=2)
    attention: Literal["default", "flash", "math"] = "default"
    optimizer: Literal["adamw", "lamb"] = "adamw"
    batch_size: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _mask(self) -> "Arm":
        if self.mask_kind == "grid" and self.patch_dropout != 0.75:
            raise ValueError("mask_kind grid keeps one patch per 2x2 window: patch_dropout must be 0.75")
        if self.mask_kind != "random" and self.patch_dropout == 0:
            raise ValueError(f"mask_kind {self.mask_kind} needs patch_dropout > 0")
        return self


class OptimizerCfg(Strict):
    """Set explicitly for both optimizers (timm's Lamb clips and adapts by default, docs/traps.md)."""
    lr: float = Field(5e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    max_grad_norm: float | None = Field(None, gt=0, description="None: no clipping")


class TokenCheck(Strict):
    """Exact count of tokens reaching the first vision block of a full-size model (meta device)."""
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    model: ModelName
    image_size: int | None = Field(None, ge=8)


class ScheduleStage(Strict):
    arm: str
    samples: float = Field(gt=0)


class Schedule(Strict):
    """A published schedule (pre-train, fine-tune if any, then any further stages), for a days,
    device-hours and (with a declared price) dollar estimate on its target device class from
    measured FLOPs and MFU."""
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    target: Literal["a100", "tpu_v3_core"] = Field("a100", description=(
        "the device class the claim counts (runners.timing.peaks.TARGETS)"))
    pretrain_arm: str
    pretrain_samples: float = Field(gt=0)
    finetune_arm: str | None = None
    finetune_samples: float | None = Field(None, gt=0)
    more: list[ScheduleStage] = Field([], description="stages after the fine-tune (e.g. CLIPA-v2's 336 px)")
    gpus: int = Field(8, ge=1)
    scaling_efficiency: tuple[float, float] = Field((0.8, 1.0), description=(
        "declared range of the N-GPU data-parallel efficiency (1: perfect scaling)"))
    usd_per_gpu_hour: float | None = Field(None, gt=0, description="the price the claim's dollars assume")
    price_source: str = Field("", description="where that price comes from (required with a price)")
    note: str = ""

    @model_validator(mode="after")
    def _efficiency(self) -> "Schedule":
        lo, hi = self.scaling_efficiency
        if not 0 < lo <= hi <= 1:
            raise ValueError("scaling_efficiency is a range (lo, hi) with 0 < lo <= hi <= 1")
        if (self.finetune_arm is None) != (self.finetune_samples is None):
            raise ValueError("finetune_arm and finetune_samples go together")
        if self.usd_per_gpu_hour is not None and not self.price_source.strip():
            raise ValueError("usd_per_gpu_hour needs price_source: where the price comes from")
        return self

    def stages(self) -> list[tuple[str, float]]:
        tune = [(self.finetune_arm, self.finetune_samples)] if self.finetune_arm is not None else []
        return [(self.pretrain_arm, self.pretrain_samples), *tune, *((m.arm, m.samples) for m in self.more)]


class ThroughputParams(Strict):
    model: ModelName = Field(description="open_clip config name, official or from model_configs/")
    image_size: int | None = Field(None, ge=8)
    context_length: int | None = Field(None, ge=2)
    modes: list[Literal["step", "image_tower"]] = Field(min_length=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    batch_size: int = Field(ge=1)
    arms: list[Arm] = Field(min_length=2, description="the first arm is the default baseline")
    rounds: int = Field(9, ge=9, description="interleaved rounds (>= 9)")
    min_block_s: float = Field(1.0, ge=1.0, description="each timed block runs >= this long")
    warmup_steps: int = Field(2, ge=1)
    optimizer: OptimizerCfg = OptimizerCfg()
    measure_memory: bool = Field(False, description="CPU: peak RSS per arm in its own process")
    token_checks: list[TokenCheck] = []
    schedules: list[Schedule] = []
    seed: int = 0

    @model_validator(mode="after")
    def _arms(self) -> "ThroughputParams":
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        for arm in self.arms:
            if arm.baseline not in (None, "none") and (arm.baseline not in names or arm.baseline == arm.name):
                raise ValueError(f"arm {arm.name}: baseline must be 'none' or another arm, one of {names}")
        for s in self.schedules:
            for ref, _samples in s.stages():
                if ref not in names:
                    raise ValueError(f"schedule {s.name}: no arm {ref!r}; arms: {names}")
        return self

    def baseline_of(self, arm: Arm) -> Arm | None:
        """The arm `arm` is compared with (None for the first arm when it names none)."""
        if arm.baseline == "none":
            return None
        if arm.baseline is not None:
            return next(a for a in self.arms if a.name == arm.baseline)
        return None if arm is self.arms[0] else self.arms[0]


class FlopsSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="suffix of the metric names")
    model: ModelName
    patch_dropouts: list[float] = Field(min_length=1)


class ParamCountSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    model: ModelName
    include_projections: bool = Field(False, description=(
        "False: encoders without their output projection (FLIP Table 9); True: open_clip's "
        "model_profile convention (image tower with its projection, text = the rest)"))


class ArchitectureParams(Strict):
    flops: list[FlopsSpec] = []
    param_counts: list[ParamCountSpec] = []
    text_context_length: int | None = Field(None, ge=2, description="override every model's")
    text_vocab_size: int | None = Field(None, ge=2, description="override every model's")
    vision_overrides: dict[str, int | float] = Field({}, description="set in every model's vision_cfg")
    apply_patch_dropout: bool = Field(True, description=(
        "false: the masked arms are counted with patch dropout 0 (the FLOPs gates' negative control)"))


SCHEMAS: dict[str, type] = {"throughput": ThroughputParams, "architecture": ArchitectureParams,
                            "train": TrainParams, "released": ReleasedParams, "deepspeed": DeepSpeedRecipe}


def params_schema(runner: str, scale: str) -> type:
    """A runner's parameter schema at a scale (train at paper scale: a published recipe); the
    registry of kinds is runners.RUNNERS."""
    return PaperRecipe if (runner == "train" and scale == "paper") else SCHEMAS[runner]
