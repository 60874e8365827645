"""Experiment kinds. Each runner module has `Params` (a pydantic schema for its suite parameters),
`plan(params, scale) -> str` (the dry-run text) and `run(params, scale) -> Output`."""
from __future__ import annotations

import importlib
from types import ModuleType

KINDS = ("throughput", "architecture")


def get(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise KeyError(f"unknown runner {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(f"runners.{kind}")
