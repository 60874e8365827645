"""What a suite may name: open_clip model configs and open_clip_train's augmentation settings,
checked without importing torch (so `validate` refuses a typo on a CPU, at any scale).

Model names are open_clip's own config files plus the repo's model_configs/; augmentation keys
are the fields of open_clip's `AugmentationCfg`, read from its source; a value must parse the way
open_clip_train's `--aug-cfg` parses it (ast.literal_eval) and have the field's shape.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "model_configs"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def known_models() -> frozenset[str]:
    files = list((_package_dir("open_clip") / "model_configs").glob("*.json")) + list(REPO_CONFIGS.glob("*.json"))
    return frozenset(p.stem for p in files)


def check_model(name: str) -> str:
    """The name, or a ValueError naming the closest known ones."""
    if name not in known_models():
        close = difflib.get_close_matches(name, sorted(known_models()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}: not an open_clip config nor in model_configs/{hint}")
    return name


# shape of each AugmentationCfg field: how open_clip's transform uses it
_AUG_SHAPES = {"scale": "pair", "ratio": "pair", "color_jitter": "jitter", "re_prob": "prob",
               "re_count": "int", "use_timm": "bool", "color_jitter_prob": "prob", "gray_scale_prob": "prob"}


@lru_cache(maxsize=1)
def augmentation_fields() -> tuple[str, ...]:
    tree = ast.parse((_package_dir("open_clip") / "transform.py").read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "AugmentationCfg")
    return tuple(n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


ModelName = Annotated[str, AfterValidator(check_model)]  # an open_clip config, official or the repo's


def check_aug_cfg(cfg: dict[str, str]) -> dict[str, str]:
    """Keys open_clip's AugmentationCfg has; values open_clip_train can parse, of the right shape."""
    fields = augmentation_fields()
    for key, text in cfg.items():
        if key not in fields:
            raise ValueError(f"aug_cfg.{key}: not a field of open_clip's AugmentationCfg; allowed: {', '.join(fields)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"aug_cfg.{key}: {text!r} is not a Python literal (open_clip_train parses "
                             "--aug-cfg values with ast.literal_eval)") from None
        shape = _AUG_SHAPES.get(key)
        ok = {"pair": lambda v: isinstance(v, tuple) and len(v) == 2 and all(map(_number, v)),
              "jitter": lambda v: _number(v) or (isinstance(v, tuple) and len(v) in (3, 4) and all(map(_number, v))),
              "prob": lambda v: _number(v) and 0 <= v <= 1,
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "bool": lambda v: isinstance(v, bool),
              None: lambda v: True}[shape](value)
        if not ok:
            want = {"pair": "a pair of numbers, e.g. (0.4, 1.0)", "jitter": "a number or a 3- or 4-tuple",
                    "prob": "a probability in [0, 1]", "int": "a whole number >= 0", "bool": "True or False"}[shape]
            raise ValueError(f"aug_cfg.{key}: {text!r} must be {want}")
    return cfg
