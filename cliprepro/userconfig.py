"""Paths to real data and weights, from the user's config file; never hard-coded, never downloaded.

Read from $CLIPREPRO_CONFIG, else ./cliprepro.yaml under the root; absent file = nothing configured.

    imagenet_val: /data/imagenet/val          # ImageNet-1k val folder (class sub-folders)
    weights:                                  # released checkpoints, by the key a suite names
      clipa_l16_i17_t16_pretrain: /ckpt/clipa_l16_i17_t16_pretrain.pt
"""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from cliprepro.errors import InputError
from cliprepro.spec import Strict, parse, read_yaml


class UserConfig(Strict):
    imagenet_val: str | None = Field(None, description="ImageNet-1k validation folder")
    weights: dict[str, str] = Field({}, description="released checkpoint paths by key")


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
    if config.imagenet_val and not Path(config.imagenet_val).is_dir():
        raise InputError(path, "imagenet_val", f"no such folder: {config.imagenet_val}")
    for key, weights in sorted(config.weights.items()):
        if not Path(weights).exists():
            raise InputError(path, f"weights.{key}", f"no such file: {weights}")
    return config, path
