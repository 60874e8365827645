"""Paths to real data and weights, from the user's config file; never hard-coded, never downloaded.

Read from $CLIPREPRO_CONFIG, else ./cliprepro.yaml under the root; absent file = nothing configured.

    train_data: /data/laion400m/{00000..41407}.tar   # shards a published recipe trains on (--train)
    imagenet_val: /data/imagenet/val          # ImageNet-1k val: the 1000 synset folders, or
                                              # clip_benchmark's wds/imagenet1k shards (test/nshards.txt)
    retrieval:                                # clip_benchmark wds retrieval sets, by their name
      mscoco_captions: /data/wds_mscoco_captions
      flickr30k: /data/wds_flickr30k
    weights:                                  # released checkpoints, by the key a suite names:
      clipa_l16_i17_t16_pretrain: /ckpt/clipa_l16_i17_t16_pretrain.pt   # a .pt / .safetensors file,
      bigg_laion2b: local-dir:/ckpt/bigg      # an open_clip folder (open_clip_config.json + weights)
      h14_laion2b: hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K   # or a repo in the local HF cache
    own_data:                                 # your data, for a train suite's gpu scale (docs/own-data.md)
      train: /data/cc3m/{00000..00331}.tar    # webdataset shards of image + caption
      train_samples: 2905954                  # samples in them (one epoch)
      eval:                                   # zero-shot classification sets by name:
        imagenet1k: /data/imagenet/val        #   clip_benchmark wds folders (test/nshards.txt);
        cifar10: /data/wds_cifar10            #   imagenet1k may also be the 1000 synset folders
      targets:                                # time-to-target accuracies, pre-registered for these
        mask50_tuned_vs_mask0: 20.0           #   data, by the suite's time_to_target name
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from cliprepro.errors import InputError
from cliprepro.spec import Strict, parse, read_yaml


class OwnData(Strict):
    """The user's own image-caption shards and zero-shot sets, trained on at a suite's gpu scale in
    place of the procedural data (runners.training.sources)."""
    train: str = Field(min_length=1, description="webdataset shards (image + caption), e.g. /data/cc3m/{00000..00331}.tar")
    train_samples: int = Field(ge=1, description="samples in those shards: one epoch")
    eval: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")], str] = Field(min_length=1, description=(
        "zero-shot classification sets by name: clip_benchmark wds folders (test/nshards.txt); "
        "imagenet1k may also be the 1000 synset folders"))
    targets: dict[str, Annotated[float, Field(gt=0, lt=100)]] = Field({}, description=(
        "mean zero-shot accuracy (%) each time_to_target comparison must reach on these data, by its "
        "name: set before the run (never read off its results)"))


class UserConfig(Strict):
    imagenet_val: str | None = Field(None, description="ImageNet-1k validation folder")
    retrieval: dict[Literal["mscoco_captions", "flickr30k"], str] = Field(
        {}, description="clip_benchmark wds retrieval set folders by name")
    train_data: str | None = Field(None, description=(
        "webdataset shards to train a published recipe on (--train), e.g. /data/laion400m/{00000..41407}.tar"))
    weights: dict[str, str] = Field({}, description=(
        "released checkpoints by key: a file, local-dir:FOLDER or hf-hub:org/name (cache only)"))
    own_data: OwnData | None = Field(None, description="your shards and eval sets for a gpu scale's training")


def load(root: Path) -> tuple[UserConfig, Path | None]:
    """The user config; a path it names that does not exist is bad input (exit 2), naming the key
    and the file: a configured path is never silently `skipped`."""
    env = os.environ.get("CLIPREPRO_CONFIG")
    path = Path(env) if env else root / "cliprepro.yaml"
    if not path.exists():
        if env:
            raise InputError(path, "$CLIPREPRO_CONFIG", "no such file")
        return UserConfig(), None
    config = parse(path, UserConfig, read_yaml(path) or {})
    if config.imagenet_val:
        _imagenet_layout(path, Path(config.imagenet_val))
    for key, weights in sorted(config.weights.items()):
        if weights.startswith("hf-hub:"):
            if weights.count("/") != 1 or weights.endswith("/"):
                raise InputError(path, f"weights.{key}", f"{weights!r}: hf-hub: takes org/name")
        elif not Path(weights.removeprefix("local-dir:")).exists():
            raise InputError(path, f"weights.{key}", f"no such file or folder: {weights}")
    for name, folder in sorted(config.retrieval.items()):
        if not (Path(folder) / "test" / "nshards.txt").is_file():
            raise InputError(path, f"retrieval.{name}", f"{folder}: not a clip_benchmark wds set (no test/nshards.txt)")
    if config.train_data:  # read where the job runs (a cluster's file system): only its form here
        _shard_pattern(path, "train_data", config.train_data)
    if config.own_data is not None:
        _check_own_data(path, config.own_data)
    return config, path


IMAGENET_CLASSES = 1000  # runners.zeroshot.imagenet_loader reads either layout


def _imagenet_layout(path: Path, root: Path) -> None:
    """One of the two layouts the evaluation reads, checked here: a wrong folder is bad input
    (exit 2) before any suite picks the paper scale for it, not an `error` record after."""
    if not root.is_dir():
        raise InputError(path, "imagenet_val", f"no such folder: {root}")
    if (root / "test" / "nshards.txt").is_file():
        return
    folders = sum(1 for d in root.iterdir() if d.is_dir())
    if folders != IMAGENET_CLASSES:
        raise InputError(path, "imagenet_val", f"{root}: {folders} class folder(s); ImageNet-1k val is the "
                         f"{IMAGENET_CLASSES} synset folders or clip_benchmark's wds/imagenet1k shards (test/nshards.txt)")


def _shard_pattern(path: Path, field: str, pattern: str) -> None:
    from runners.training import shards

    try:
        shards.expand(pattern)
    except ValueError as exc:  # braceexpand's UnbalancedBracesError
        raise InputError(path, field, f"{pattern!r} is not a shard pattern ({exc}); e.g. "
                         "/data/cc3m/{00000..00331}.tar, several joined by ::") from None


def _check_own_data(path: Path, own: OwnData) -> None:
    from runners.training import shards

    _shard_pattern(path, "own_data.train", own.train)
    missing, total = shards.unreadable(own.train)
    if missing:
        raise InputError(path, "own_data.train", f"{len(missing)} of {total} shard(s) missing or unreadable, "
                         f"first {missing[0]}")
    for name, folder in sorted(own.eval.items()):
        if (Path(folder) / "test" / "nshards.txt").is_file():
            continue
        if name == "imagenet1k" and Path(folder).is_dir():
            continue  # the synset folders: counted when it is read (runners.zeroshot.imagenet_loader)
        raise InputError(path, f"own_data.eval.{name}", f"{folder}: not a clip_benchmark wds set (no "
                         "test/nshards.txt)" + ("" if name != "imagenet1k" else " nor a folder"))
