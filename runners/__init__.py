"""Experiment kinds, one module each at this level: throughput, architecture, train.

One registry (`RUNNERS`). For each kind, the parameter schema per scale and the names of the
metrics it will write come from pure modules (runners.params, runners.metric_names: no torch, so
`validate` stays light); its `plan` and `run` come from the kind's module, imported only when a
suite runs or prints its plan. A kind's module satisfies `Runner`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from runners.output import Output

# the profiler (SDPA kernel check) logs every start/stop unless told otherwise; set before torch loads
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

RUNNERS = ("throughput", "architecture", "train")


@runtime_checkable
class Runner(Protocol):
    """What a kind's module provides (its params are the schema `params_schema(kind, scale)` gives)."""

    def plan(self, params: Any, scale: str) -> str:
        """The dry-run text: what would run, where, at what size."""

    def run(self, params: Any, scale: str, build_dir: Path) -> "Output":
        """Measure; every metric named by runners.metric_names for these params (or skipped)."""


def params_schema(kind: str, scale: str) -> type:
    from runners.params import params_schema as schema

    return schema(_known(kind), scale)


def declared_metrics(params: Any) -> set[str]:
    from runners.metric_names import declared

    return declared(params)


def get(kind: str) -> Runner:
    module = importlib.import_module(f"runners.{_known(kind)}")
    assert isinstance(module, Runner), f"runners.{kind} does not provide plan and run"
    return module


def _known(kind: str) -> str:
    if kind not in RUNNERS:
        raise KeyError(f"unknown runner {kind!r}; known: {', '.join(RUNNERS)}")
    return kind
