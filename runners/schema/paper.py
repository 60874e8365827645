"""A published multi-GPU recipe (the train runner at paper scale): stages whose per-GPU batch and
lr are derived, never typed (pure: no torch)."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from cliprepro.spec import Strict
from runners.schema.model_names import ModelName, check_aug_cfg
from runners.schema.train_params import Comparison, LaterFields


class PaperStage(Strict):
    """One stage of a published multi-GPU recipe; per-GPU batch and lr are derived, never typed."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    script: str = Field(description="the published script this stage mirrors")
    model: ModelName
    image_size: int | None = Field(None, ge=8, description="--force-image-size; None: the model's own")
    patch_dropout: float | None = Field(None, ge=0, lt=1, description="--force-patch-dropout")
    init: str = Field("previous", description="'scratch', 'previous' or an earlier stage's name "
                      "(the first stage always starts from scratch)")
    global_batch: int = Field(ge=1)
    lr_per_256: float = Field(gt=0, description="lr = lr_per_256 x global_batch / 256")
    warmup: int = Field(ge=0)
    epochs: int = Field(ge=1)
    train_num_samples: int | None = Field(None, ge=1)
    aug_cfg: Annotated[dict[str, str], AfterValidator(check_aug_cfg)] = {}
    weights_key: str = Field(description="user-config key of the released checkpoint of this stage")


class PaperRecipe(LaterFields):
    """A paper-scale two-stage recipe: printed as torchrun lines (--dry-run); its released weights
    are evaluated on ImageNet when the user config provides them."""
    _later = ("max_loss",)
    gpus: int = Field(8, ge=1)
    train_data: str = "/path/to/laion-400m"
    common_flags: list[str] = Field([], description=(
        "open_clip_train flags for every stage; --save-frequency N (N >= 1) sets the checkpoints preflight counts"))
    epoch_samples: int | None = Field(None, ge=1, description=(
        "samples in one epoch of train_data: the plan's samples seen and GPU-hours (None: unknown)"))
    stages: list[PaperStage] = Field(min_length=1)
    compare: list[Comparison] = Field([], description="paired ImageNet gains of released checkpoints")
    max_loss: float | None = Field(None, gt=0, description=(
        "a training loss above this is a divergence (a non-finite one always is): the run stops"))

    @model_validator(mode="after")
    def _divisible(self) -> "PaperRecipe":
        names = [s.name for s in self.stages]
        for i, s in enumerate(self.stages):
            if s.global_batch % self.gpus:
                raise ValueError(f"stage {s.name}: global_batch {s.global_batch} is not divisible by "
                                 f"gpus {self.gpus}; the per-GPU batch must be whole")
            if s.init not in ("scratch", "previous", *names[:i]):
                raise ValueError(f"stage {s.name}: init must be 'scratch', 'previous' or an earlier "
                                 f"stage, one of {names[:i]}")
        for c in self.compare:
            for ref in (c.a, c.b):
                if ref not in names:
                    raise ValueError(f"comparison {c.name}: no stage {ref!r}; stages: {names}")
        if "--save-frequency" in self.common_flags:  # preflight divides epochs by it
            i = self.common_flags.index("--save-frequency")
            value = self.common_flags[i + 1] if i + 1 < len(self.common_flags) else ""
            if not (value.isdigit() and int(value) >= 1):
                raise ValueError(f"common_flags: --save-frequency takes a whole number >= 1, got {value!r}")
        return self

    def init_of(self, stage: PaperStage) -> PaperStage | None:
        i = self.stages.index(stage)
        if i == 0 or stage.init == "scratch":
            return None
        if stage.init == "previous":
            return self.stages[i - 1]
        return next(s for s in self.stages if s.name == stage.init)
