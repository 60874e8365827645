"""Experiment kinds. Each runner module has `Params` (a pydantic schema for its suite parameters),
`plan(params, scale) -> str` (the dry-run text) and `run(params, scale) -> Output`."""
from __future__ import annotations

import importlib
import os
from types import ModuleType

# the profiler (SDPA kernel check) logs every start/stop unless told otherwise; set before torch loads
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

KINDS = ("throughput", "architecture", "train")


def get(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise KeyError(f"unknown runner {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(f"runners.{kind}")
