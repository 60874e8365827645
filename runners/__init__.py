"""Experiment kinds, one module each at this level: throughput, architecture, train, released
(registered kinds a suite names) and zeroshot (clip_benchmark evaluation, used by train and by
released). Helpers live in subpackages below them:

    schema/    what goes in and comes out: parameter schemas, metric names, model names, Output
    model/     open_clip models, their FLOPs, CLIPA's grid / block masks
    timing/    the one timing recipe and what it times: step, memory, peaks, modelled GPU-days
    training/  the train runner's recipe, proxy data, paired contrasts, text check
    upstream/  the open_clip_train entry point and every compatibility fix for upstream bugs

One registry (`RUNNERS`). For each kind, the parameter schema per scale and the names of the
metrics it will write come from runners.schema (no torch, so `validate` stays light); its `plan`
and `run` come from the kind's module, imported only when a suite runs or prints its plan. A
kind's module satisfies `Runner`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from runners.schema.output import Output


def quiet_profiler_logs() -> None:
    """The profiler (the SDPA kernel check) prints a "USDT: ... profiler_start" / "profiler_stop"
    pair to stderr each time it runs. Kineto's levels go VERBOSE 0 ... ERROR 4, USDT 5, so only a
    level above 5 hides them (5 does not); torch reads it once, when it loads. A user's own
    KINETO_LOG_LEVEL is kept."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")


quiet_profiler_logs()  # at import: before any runner (or the trainers forked later) loads torch

RUNNERS = ("throughput", "architecture", "train", "released", "deepspeed")


@runtime_checkable
class Runner(Protocol):
    """What a kind's module provides (its params are the schema `params_schema(kind, scale)` gives)."""

    def plan(self, params: Any, scale: str) -> str:
        """The dry-run text: what would run, where, at what size."""

    def run(self, params: Any, scale: str, build_dir: Path) -> "Output":
        """Measure; every metric named by runners.schema.metric_names for these params (or skipped)."""


def params_schema(kind: str, scale: str) -> type:
    from runners.schema.params import params_schema as schema

    return schema(_known(kind), scale)


def declared_metrics(params: Any) -> set[str]:
    from runners.schema.metric_names import declared

    return declared(params)


def get(kind: str) -> Runner:
    module = importlib.import_module(f"runners.{_known(kind)}")
    assert isinstance(module, Runner), f"runners.{kind} does not provide plan and run"
    return module


def _known(kind: str) -> str:
    if kind not in RUNNERS:
        raise KeyError(f"unknown runner {kind!r}; known: {', '.join(RUNNERS)}")
    return kind
