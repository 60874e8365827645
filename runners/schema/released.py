"""Parameters of the `released` runner: released checkpoints evaluated zero-shot (pure, no torch).

Each model names its open_clip architecture, where its weights come from (an open_clip pretrained
tag, found in the local Hugging Face cache, or a user-config key), the spec it is declared to have
and the evaluation protocol its claim was made with. The protocol is stored in the record; the
confounders are the settings re-tried, one at a time, when a claim misses (runners/released.py).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cliprepro.spec import Strict
from runners.schema.model_names import ModelName

TemplateSet = Literal["openai", "one"]  # clip_benchmark's imagenet1k set (OpenAI's 80) | "a photo of a {c}."
ResizeMode = Literal["shortest", "squash", "longest"]
Interpolation = Literal["bicubic", "bilinear"]
Precision = Literal["fp32", "amp"]  # amp: clip_benchmark's autocast on CUDA; on a CPU always fp32
RetrievalSet = Literal["mscoco_captions", "flickr30k"]
CONFOUNDERS = ("activation", "resize_mode", "interpolation", "templates", "precision")
Confounder = Literal[CONFOUNDERS]


class Protocol(Strict):
    """How a claim's number was measured: pinned per model and stored in the record."""
    templates: TemplateSet = "openai"
    resize_mode: ResizeMode = Field("shortest", description="open_clip's inference resize (squash: no crop)")
    interpolation: Interpolation = "bicubic"
    precision: Precision = "amp"
    batch_size: int = Field(64, ge=1)


class ReleasedModel(Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$", description="suffix of the metric names")
    model: ModelName = Field(description="the open_clip architecture the weights are declared to be")
    pretrained: str | None = Field(None, description=(
        "open_clip pretrained tag; its Hugging Face repo is looked up in the local cache, never downloaded"))
    weights_key: str = Field(pattern=r"^[A-Za-z0-9_]+$", description=(
        "user-config key weights.<key>: a .pt / .safetensors file, an open_clip local-dir folder or "
        "hf-hub:org/name (from the cache); it wins over `pretrained`"))
    quick_gelu: bool = Field(False, description="the declared activation: QuickGELU (OpenAI-style) or GELU")
    image_size: int | None = Field(None, ge=8, description="None: the architecture's own")
    protocol: Protocol = Protocol()
    retrieval: list[RetrievalSet] = Field([], description="clip_benchmark wds retrieval sets it is judged on")


class ReleasedParams(Strict):
    models: list[ReleasedModel] = Field(min_length=1)
    confounders: list[Confounder] = Field(list(CONFOUNDERS), description=(
        "settings re-tried one at a time (each against the pinned protocol) when a claim misses"))
    retrieval_k: int = Field(5, ge=1, description="recall@k of the retrieval claims")

    @model_validator(mode="after")
    def _unique(self) -> "ReleasedParams":
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self
