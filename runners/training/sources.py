"""What a train run reads: its training shards and its zero-shot sets, from the procedural proxy
data (built here) or from the user's own data (user config `own_data`, a suite's gpu scale).

One `Source` serves the stage's trainer arguments, its cache key, the evaluation and the record,
so a stage trains and is judged through the same code on either: only where the bytes come from
differs. Own data are never copied or downloaded; the record holds their identity (shard count,
hashes of the shard names and sizes, sample count, each eval set's file fingerprint), never a path.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from runners.schema.train_params import Stage, TrainParams
from runners.training import shards
from runners.training.proxydata import DataSpec, ensure

IMAGENET = "imagenet1k"  # the eval set read by runners.zeroshot.classify_imagenet (wds or synset folders)


@dataclass(frozen=True)
class Source:
    label: str                      # how the record names the data (inputs.data)
    train_key: str                  # in each stage's cache key: what its training reads
    eval_key: str                   # in each evaluation's cache key: what it is scored on
    pattern: str                    # the training shards, all of them, as open_clip_train reads them
    train_samples: int              # samples in all of them: one epoch
    shard_samples: int | None       # samples per shard (procedural data: subsets by train_shards)
    eval_sets: dict[str, Path]      # zero-shot classification sets by name
    proxy_root: Path | None = None  # the procedural data's folder (retrieval set, text checks)
    identity: dict = field(default_factory=dict)  # what the record says of it besides the label
    targets: dict[str, float] = field(default_factory=dict)  # own data: time-to-target accuracies, by name

    @property
    def own(self) -> bool:
        return self.proxy_root is None

    def train_pattern(self, first_shards: int | None = None) -> str:
        """The pattern of the whole set, or of its first n shards (procedural data only)."""
        if first_shards is None or self.own:
            return self.pattern
        n = min(first_shards, len(shards.expand(self.pattern)))
        return f"{self.proxy_root / 'train'}/shard-{{00000..{n - 1:05d}}}.tar"

    def epoch_samples(self, stage: Stage) -> int:
        """Samples per epoch of `stage`: --train-num-samples, else the shards it reads."""
        if stage.train_num_samples:
            return stage.train_num_samples
        if stage.train_shards and self.shard_samples:
            return min(self.train_samples, stage.train_shards * self.shard_samples)
        return self.train_samples


def proxy(spec: DataSpec, root: Path, attributes: list[str]) -> Source:
    """The procedural data of `spec`, built under `root` once (runners.training.proxydata)."""
    return proxy_at(spec, ensure(spec, root), attributes)


def proxy_at(spec: DataSpec, data: Path, attributes: list[str]) -> Source:
    """The procedural data of `spec` already built in `data`."""
    n = len(sorted((data / "train").glob("shard-*.tar")))
    return Source(label=spec.label(), train_key=spec.fingerprint(), eval_key=spec.fingerprint(),
                  pattern=f"{data / 'train'}/shard-{{00000..{n - 1:05d}}}.tar", train_samples=spec.train_samples,
                  shard_samples=spec.shard_samples, eval_sets={a: data / "eval" / f"wds_{a}" for a in attributes},
                  proxy_root=data, identity={"data_spec": spec.__dict__, "substitutes_paper_data": True})


def own(config, config_path: Path | None) -> Source:
    """The user config's own_data (checked when the config was loaded: cliprepro.userconfig)."""
    from runners.zeroshot import folder_fingerprint

    train = {**shards.identity(config.train), "train_samples": config.train_samples}
    evals = {name: folder_fingerprint(Path(folder)) for name, folder in sorted(config.eval.items())}
    train_key = _digest(train)
    return Source(label=f"own data {train_key} (user config own_data)", train_key=train_key,
                  eval_key=_digest(evals), pattern=config.train, train_samples=config.train_samples,
                  shard_samples=None, eval_sets={n: Path(f) for n, f in sorted(config.eval.items())},
                  identity={"own_data": {"config_key": "own_data", "config_file": config_path.name if config_path else None,
                                         "train": train, "eval_sets": evals, "targets": dict(config.targets)},
                            "substitutes_paper_data": True},
                  targets=dict(config.targets))


def _stage_spec(params: TrainParams, stage: Stage) -> DataSpec | None:
    """The procedural data a stage with its own data_seed trains on (None: the run's)."""
    if stage.data_seed is None:
        return None
    return DataSpec(**{**params.data.model_dump(), "seed": stage.data_seed})


def stage_train_key(source: Source, params: TrainParams, stage: Stage) -> str:
    """What a stage's training reads, for its cache key (pure: nothing is built)."""
    spec = _stage_spec(params, stage)
    return source.train_key if spec is None else spec.fingerprint()


def for_stage(source: Source, params: TrainParams, stage: Stage) -> Source:
    """The run's source, or the procedural data of the stage's data_seed (built beside the run's):
    training reads it, evaluation stays on the run's sets."""
    spec = _stage_spec(params, stage)
    if spec is None:
        return source
    own = proxy(spec, source.proxy_root.parent, [])
    return replace(own, eval_key=source.eval_key, eval_sets=source.eval_sets)


NOT_CONFIGURED = ("skipped: this scale trains on your own data; set own_data (train shards, train_samples, "
                  "eval sets) in the user config, cliprepro.yaml or $CLIPREPRO_CONFIG (docs/own-data.md)")


def of(params: TrainParams, build: Path) -> Source | None:
    """The source a run's params name: the procedural data, or the user's own (None: the user
    config has none; the run is skipped with NOT_CONFIGURED)."""
    if not params.own_data:
        return proxy(DataSpec(**params.data.model_dump()), build / "data", list(params.attributes))
    from cliprepro.userconfig import load

    config, path = load(build.parent)
    return own(config.own_data, path) if config.own_data is not None else None


def _digest(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]
