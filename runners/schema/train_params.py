"""The train runner's parameters at proxy and gpu scale: stages (open_clip_train runs), their
comparisons, soups, time-to-target, text checks and ablation rows (pure: no torch)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_serializer, model_validator

from cliprepro.spec import Strict
from runners.schema.ablation import AblationRow, ProbeComparison
from runners.schema.model_names import ModelName

# open_clip's reduction_mask names (truncate = none); CLIPA's "block" is open_clip's "simple", kept
# as an alias that is stored as "simple"
TextMask = Annotated[Literal["truncate", "syntax", "random", "simple"],
                     BeforeValidator(lambda v: "simple" if v == "block" else v)]


class LaterFields(Strict):
    """Fields added after records and stage caches were made are left out of a dump while at
    their default, so an older record's params and a stage's cache key read as they did."""
    _later: tuple[str, ...] = ()

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler):
        data = handler(self)
        for name in self._later:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data


class DataParams(Strict):
    """Procedural proxy data (runners/training/proxydata.py)."""
    seed: int = 0
    image_px: int = Field(32, ge=8)
    train_samples: int = Field(8192, ge=64)
    eval_samples: int = Field(1000, ge=10)
    shard_samples: int = Field(2048, ge=16)


class Mim(Strict):
    """The stage is EVA's MIM pre-training of its model's image tower (runners.training.mim), not a
    CLIP training: its lr, batch_size and epochs are the MIM's; epochs 0 copies the teacher's image
    tower (no MIM: the 'copied teacher' control; with teacher random, a plain random init)."""
    teacher: str = Field(description=(
        "an earlier stage: a CLIP model whose image tower's patch features are regressed (trained on a "
        "disjoint split: its data_seed); or 'random': an untrained teacher (the control)"))
    mask_ratio: float = Field(0.4, gt=0, lt=1, description="fraction of patch embeddings replaced by the [MASK] embedding")


class Stage(LaterFields):
    """One open_clip_train run. epochs 0: no training; the init stage's weights are evaluated
    with this stage's model and image size (the 'no fine-tune stage' control)."""
    _later = ("seed_offset", "train_shards", "optimizer", "attention", "mim", "data_seed")
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    model: ModelName
    image_size: int | None = Field(None, ge=4, description="--force-image-size (resize: fewer tokens)")
    patch_dropout: float | None = Field(None, ge=0, lt=1, description="--force-patch-dropout")
    mask_kind: Literal["random", "grid", "block"] = Field("random", description=(
        "which patches patch_dropout drops: open_clip's random PatchDropout, or CLIPA's grid / block"))
    context_length: int | None = Field(None, ge=3, description="--force-context-length (text tokens)")
    text_mask: TextMask = Field("truncate", description=(
        "how captions are cut to context_length: open_clip's reduction_mask '' / syntax / random / "
        "simple (CLIPA's 'block', accepted as an alias)"))
    epochs: int = Field(ge=0)
    train_num_samples: int | None = Field(None, ge=1, description="--train-num-samples (a partial epoch)")
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    warmup: int = Field(0, ge=0)
    init: str = Field("scratch", description="'scratch', 'previous' or the name of an earlier stage")
    n_seeds: int | None = Field(None, ge=1, description="train only the run's first n seeds (None: all)")
    seed_offset: int = Field(0, ge=0, description=(
        "trainer seed = the run's seed + this: models that share no init (a soup's negative control)"))
    train_shards: int | None = Field(None, ge=1, description="train on the first n shards only (a data subset)")
    optimizer: Literal["adamw", "lamb"] = Field("adamw", description=(
        "adamw: open_clip_train's own; lamb: timm's Lamb through open_clip_train's --opt timm/lamb, "
        "with TrainParams.lamb's settings, every one explicit"))
    attention: Literal["default", "flash", "math"] = Field("default", description=(
        "the SDPA kernel training steps may use (torch's sdpa_kernel; flash falls back to math where it "
        "cannot run, e.g. the text tower's causal mask on CPU); the first step's kernels are recorded"))
    mim: Mim | None = Field(None, description="this stage is MIM pre-training of the image tower (EVA's init)")
    data_seed: int | None = Field(None, description=(
        "train on the procedural data drawn with this seed instead of the run's: samples disjoint from its "
        "training and evaluation data (a MIM teacher's split)"))

    @model_validator(mode="after")
    def _mim(self) -> "Stage":
        if self.mim is None:
            return self
        clip_only = {"image_size": None, "patch_dropout": None, "context_length": None, "text_mask": "truncate",
                     "optimizer": "adamw", "attention": "default", "init": "scratch"}
        for name, default in clip_only.items():
            if getattr(self, name) != default:
                raise ValueError(f"stage {self.name}: {name} is a CLIP training's setting; a MIM stage "
                                 f"(mim) keeps {name} {default!r}")
        return self

    @model_validator(mode="after")
    def _mask(self) -> "Stage":
        if self.mask_kind == "grid" and self.patch_dropout != 0.75:
            raise ValueError("mask_kind grid keeps one patch per 2x2 window: patch_dropout must be 0.75")
        if self.mask_kind != "random" and not self.patch_dropout:
            raise ValueError(f"mask_kind {self.mask_kind} needs patch_dropout > 0")
        return self


class Comparison(Strict):
    """Paired gain of stage `b` over stage `a` in zero-shot acc1, pooled over the eval attributes."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    a: str
    b: str


class Contrast(Strict):
    """A paired linear contrast of stages' per-example correctness, in pp: sum(coef x acc).
    E.g. {small_full: 1, small_cut: -1, large_full: -1, large_cut: 1} = how much less the larger
    model loses when tokens are cut (positive: the paper's direction)."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    terms: dict[str, float] = Field(min_length=2)


class BestOf(Strict):
    """`best` beats every stage in `others`: value and bounds are the minimum over the pairwise
    gains, so the lower bound is > 0 only when every pairwise lower bound is (docs/design.md)."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    best: str
    others: list[str] = Field(min_length=1)


class Soup(Strict):
    """The uniform weight average of stages' checkpoints, per seed (runners/model/soup.py),
    evaluated like a stage. The eval set is split per attribute: the first `selection_fraction`
    of its examples pick the best ingredient, the rest is the test split every soup metric uses."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    of: list[str] = Field(min_length=2, description="its ingredients: stages of one architecture")
    selection_fraction: float = Field(0.5, gt=0, lt=1)
    versus: str | None = Field(None, description=(
        "an earlier soup: how much more this soup gains over its ingredients' mean than that one does "
        "(e.g. ingredients sharing stage 1's init vs trained from scratch)"))


class LambSettings(Strict):
    """timm's Lamb (the NVLAMB variant) for stages with optimizer lamb. Its defaults clip the global
    gradient norm at 1.0 inside the optimizer and adapt only decayed parameters (docs/traps.md), so
    every setting is written here and passed explicitly."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    max_grad_norm: float | None = Field(None, gt=0, description="clipping inside Lamb (None: none)")
    always_adapt: bool = Field(False, description="the trust ratio also for parameters without weight decay")
    trust_clip: bool = Field(False, description="clip the trust ratio at 1")
    noted: str = Field("", description="settings considered and not used, with why")

    def timm_kwargs(self) -> dict:
        """What open_clip_train does not pass to timm's create_optimizer_v2 itself."""
        return {"max_grad_norm": self.max_grad_norm, "always_adapt": self.always_adapt, "trust_clip": self.trust_clip}


class TimeToTarget(Strict):
    """Training step time (data wait and evaluation excluded) until zero-shot mean accuracy first
    reaches a pre-registered target, per seed, for two arms; each arm is a chain of stages (each
    starting from the one before), evaluated at every saved epoch. The speed-up is the baseline's
    time over the arm's (runners.training.targets)."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    arm: list[str] = Field(min_length=1, description="stages in order, e.g. [mask50, mask50_tuned]")
    baseline: list[str] = Field(min_length=1, description="stages in order, e.g. [mask0]")
    target_acc1_pct: float | None = Field(None, gt=0, lt=100, description=(
        "pre-registered mean zero-shot accuracy to reach; never the baseline's final number of the same "
        "run. On own data (data: own_data) it is not set here: the user config's own_data.targets gives it"))
    target_source: str | None = Field(None, min_length=1, description="where the target comes from (with the target)")


class TextCheck(Strict):
    """Content words a text mask keeps, per caption, against a reference mask, measured with
    open_clip's own tokenizer on the eval captions of one phrasing group."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    context_length: int = Field(ge=3)
    mask: TextMask
    reference: TextMask = "truncate"
    captions: Literal["filler_first", "content_first", "all"] = "filler_first"


OWN_DATA = "own_data"  # TrainParams.data: the user config's own_data in place of the procedural data
PROXY_DATA_FIELDS = ("attributes", "retrieval", "text_checks")  # what only the procedural data has


class TrainParams(LaterFields):
    _later = ("soups", "max_loss", "time_to_target", "precision", "lamb", "ablation", "probes")
    data: DataParams | Literal["own_data"] = Field(DataParams(), description=(
        "the procedural proxy data (its parameters), or own_data: the user config's own_data shards and "
        "zero-shot sets (a gpu scale; runners.training.sources)"))
    stages: list[Stage] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    attributes: list[Literal["shape", "color", "size", "position"]] = ["shape", "color", "size", "position"]
    retrieval: bool = True
    eval_image_size: int | None = Field(None, ge=4, description=(
        "evaluate every stage at this size (the target setting, full tokens); None: each stage's own"))
    compare: list[Comparison] = []
    contrasts: list[Contrast] = []
    best_of: list[BestOf] = []
    text_checks: list[TextCheck] = []
    soups: list[Soup] = []
    workers: int = Field(1, ge=0)
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    wd: float = 0.1
    max_loss: float | None = Field(None, gt=0, description=(
        "a training loss above this is a divergence (a non-finite one always is): the run stops, "
        "recorded as an error"))
    time_to_target: list[TimeToTarget] = []
    precision: Literal["fp32", "amp_bf16"] = Field("fp32", description="open_clip_train --precision")
    lamb: LambSettings = Field(LambSettings(), description="timm Lamb's settings for stages with optimizer lamb")
    ablation: list[AblationRow] = Field([], description="an ablation table's rows, base first (runners.schema.ablation)")
    probes: list[ProbeComparison] = Field([], description="linear-probe comparisons of image towers")

    @property
    def own_data(self) -> bool:
        return self.data == OWN_DATA

    @model_validator(mode="after")
    def _data(self) -> "TrainParams":
        """Fields of the procedural data are refused with own data, not ignored; a time-to-target
        target is pre-registered in the suite (procedural data) or in the user config (own data)."""
        if self.own_data:
            for name in PROXY_DATA_FIELDS:
                if name in self.model_fields_set:
                    raise ValueError(f"{name} belongs to the procedural data; with data: {OWN_DATA} the "
                                     "user config's own_data.eval sets are evaluated")
            for s in self.stages:
                if s.train_shards:
                    raise ValueError(f"stage {s.name}: train_shards needs the procedural data; with "
                                     f"{OWN_DATA}, name the subset's shards in own_data.train")
        for t in self.time_to_target:
            if self.own_data and (t.target_acc1_pct is not None or t.target_source is not None):
                raise ValueError(f"time_to_target {t.name}: with data: {OWN_DATA} the target is pre-registered "
                                 f"in the user config (own_data.targets.{t.name}), not in the suite")
            if not self.own_data and (t.target_acc1_pct is None or not t.target_source):
                raise ValueError(f"time_to_target {t.name}: target_acc1_pct and target_source are required")
        return self

    @model_validator(mode="after")
    def _refs(self) -> "TrainParams":
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if self.stages[0].init != "scratch":
            raise ValueError("the first stage starts from scratch")
        for i, s in enumerate(self.stages):
            if s.init not in ("scratch", "previous", *names[:i]):
                raise ValueError(f"stage {s.name}: init must be 'scratch', 'previous' or an earlier "
                                 f"stage, one of {names[:i]}")
            if s.epochs == 0 and s.init == "scratch" and s.mim is None:
                raise ValueError(f"stage {s.name}: epochs 0 needs an init stage (it trains nothing)")
            if s.mim is not None and s.mim.teacher != "random":
                teacher = next((t for t in self.stages[:i] if t.name == s.mim.teacher), None)
                if teacher is None:
                    raise ValueError(f"stage {s.name}: mim.teacher must be 'random' or an earlier stage, one of {names[:i]}")
                if len(self.seeds_of(teacher)) < len(self.seeds_of(s)):
                    raise ValueError(f"stage {s.name}: trains more seeds than its teacher {teacher.name}")
                if s.epochs == 0 and teacher.model != s.model:
                    raise ValueError(f"stage {s.name}: copying the teacher's image tower (epochs 0) needs the "
                                     f"same model, {teacher.model} vs {s.model}")
            if s.data_seed is not None and (self.own_data or s.data_seed == self.data.seed):
                raise ValueError(f"stage {s.name}: data_seed draws procedural data other than the run's "
                                 f"(not {OWN_DATA}, not the run's seed)")
            if s.n_seeds is not None and s.n_seeds > len(self.seeds):
                raise ValueError(f"stage {s.name}: n_seeds {s.n_seeds} > the {len(self.seeds)} seeds")
            init = self.init_of(s)
            if init is not None and len(self.seeds_of(init)) < len(self.seeds_of(s)):
                raise ValueError(f"stage {s.name}: trains more seeds than its init stage {init.name}")
        refs = [(f"comparison {c.name}", [c.a, c.b]) for c in self.compare]
        refs += [(f"contrast {c.name}", list(c.terms)) for c in self.contrasts]
        refs += [(f"best_of {c.name}", [c.best, *c.others]) for c in self.best_of]
        refs += [(f"soup {c.name}", c.of) for c in self.soups]
        refs += [(f"time_to_target {c.name}", [*c.arm, *c.baseline]) for c in self.time_to_target]
        refs += [(f"ablation row {r.name}", [r.stage]) for r in self.ablation]
        refs += [(f"probe {c.name}", [c.a, c.b]) for c in self.probes]
        gains = [c.name for c in self.compare] + [r.name for r in self.ablation[1:]]
        if len(set(gains)) != len(gains):
            raise ValueError(f"compare and ablation row names share gain_<name> metrics: names must differ, got {gains}")
        if self.probes and self.own_data:
            raise ValueError(f"probes read the procedural data's attribute sets, not {OWN_DATA}'s")
        for what, stages in refs:
            for ref in stages:
                if ref not in names:
                    raise ValueError(f"{what}: no stage {ref!r}; stages: {names}")
        for i, soup in enumerate(self.soups):
            if soup.name in names:
                raise ValueError(f"soup {soup.name}: a stage has that name")
            if soup.versus is not None and soup.versus not in [x.name for x in self.soups[:i]]:
                raise ValueError(f"soup {soup.name}: versus must name an earlier soup, one of "
                                 f"{[x.name for x in self.soups[:i]]}")
            models = {s.model for s in self.stages if s.name in soup.of}
            if len(models) != 1:
                raise ValueError(f"soup {soup.name}: ingredients of one architecture only, got {sorted(models)}")
        by_name = {s.name: s for s in self.stages}
        for t in self.time_to_target:
            for chain in (t.arm, t.baseline):
                if by_name[chain[0]].init != "scratch":
                    raise ValueError(f"time_to_target {t.name}: {chain[0]} must start from scratch (its time counts from 0)")
                for prev, cur in zip(chain, chain[1:]):
                    if self.init_of(by_name[cur]) is not by_name[prev]:
                        raise ValueError(f"time_to_target {t.name}: {cur} must start from {prev}")
                if any(len(self.seeds_of(by_name[s])) < 2 for s in chain):
                    raise ValueError(f"time_to_target {t.name}: every stage needs 2 or more seeds (an interval over seeds)")
        return self

    def init_of(self, stage: Stage) -> Stage | None:
        """The stage whose checkpoint `stage` starts from (None: from scratch)."""
        if stage.init == "scratch":
            return None
        i = next(i for i, s in enumerate(self.stages) if s.name == stage.name)
        if stage.init == "previous":
            return self.stages[i - 1]
        return next(s for s in self.stages if s.name == stage.init)

    def seeds_of(self, stage: Stage) -> list[int]:
        return self.seeds[:stage.n_seeds] if stage.n_seeds else list(self.seeds)
