"""Schemas for suites/*.yaml and expected/*.yaml, and loading them with clear errors.

Unknown keys are errors everywhere (extra="forbid"); a bad file raises InputError naming the
file, the field and what is allowed, which the CLI turns into exit status 2.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cliprepro.errors import InputError

Scale = Literal["proxy", "gpu", "paper"]
SCALES: tuple[str, ...] = ("proxy", "gpu", "paper")
Kind = Literal["exact", "at_least", "at_most", "two_sided", "released_weights", "calibrated_effect",
               "direction"]
Role = Literal["gate", "finding"]
SourceKind = Literal["primary", "secondary", "derived", "calibration"]
RunnerName = Literal["throughput", "architecture", "train"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScalePlan(Strict):
    hardware: str = Field(description="what this scale runs on, for a human")
    runtime_s: float = Field(gt=0, description="expected wall time; a run over 1.5x is an error")
    requires: list[Literal["cuda"]] = []
    params: dict[str, Any] = Field(description="runner parameters, checked by the runner's schema")


class NegativeControl(Strict):
    gates: list[str] = Field(min_length=1, description="claim ids of the gates this control must fail")
    description: str
    overrides: dict[str, Any] = Field(description="runner parameters replaced for the control run")


class Suite(Strict):
    suite: str
    version: int = Field(ge=1)
    title: str
    claim: str = Field(description="the claim in one sentence")
    source: str = Field(description="paper, table or figure; primary or secondary")
    command: str
    fidelity: str = Field(description="what the proxy keeps from the paper and what it changes")
    runner: RunnerName
    ci_scale: Scale = Field(description="the scale CI runs (proxy, or paper for CPU-exact checks)")
    scales: dict[Scale, ScalePlan]
    negative_controls: dict[str, NegativeControl] = {}

    @model_validator(mode="after")
    def _ci_scale_planned(self) -> "Suite":
        if self.ci_scale not in self.scales:
            raise ValueError(f"ci_scale {self.ci_scale!r} has no plan under scales "
                             f"(planned: {sorted(self.scales)})")
        return self

    def gates_of(self, control: str) -> list[str]:
        return self.negative_controls[control].gates


class ExpectedEntry(Strict):
    claim: str
    scale: Scale
    metric: str = Field(description="name of the runner measurement judged")
    value: float | None = Field(description="null only for a gate not yet calibrated")
    unit: str
    kind: Kind
    tolerance: float = Field(ge=0, description=(
        "exact / two_sided / released_weights: absolute; at_least / at_most: relative delta; "
        "calibrated_effect: fraction of the calibrated effect the lower bound must keep; "
        "direction: unused (0)"))
    role: Role
    source: str
    source_kind: SourceKind
    null_value: float | None = Field(None, description="calibrated_effect: the no-effect value")
    negative_control: str | None = None
    calibration: list[str] = []
    calibration_spread: float | None = None
    planned_halfwidth: float | None = Field(None, description=(
        "half-width of the interval the planned run reaches; from calibration, or declared"))
    seed_spread: float | None = Field(None, gt=0, description=(
        "direction: standard deviation of the metric between trainings that differ only in seed, "
        "declared (say where from in `note`); widens the interval of a one-seed measurement"))
    note: str = ""

    @model_validator(mode="after")
    def _rules(self) -> "ExpectedEntry":
        if self.value is None and not (self.kind == "calibrated_effect" and not self.calibration):
            raise ValueError("value may be null only for a calibrated_effect not yet calibrated")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be finite")
        if self.role == "gate" and not self.negative_control:
            raise ValueError("a gate needs a negative_control (the mechanism switched off)")
        if self.kind == "calibrated_effect":
            if self.null_value is None:
                raise ValueError("calibrated_effect needs null_value (1 for ratios, 0 for differences)")
            if self.calibration and len(self.calibration) < 3:
                raise ValueError("calibrated_effect needs >= 3 calibration record ids (or none yet)")
            if bool(self.calibration) != (self.value is not None):
                raise ValueError("a calibrated_effect has both value and calibration ids, or neither")
            if not 0 < self.tolerance <= 1:
                raise ValueError("calibrated_effect tolerance is the kept fraction, in (0, 1]")
        if self.scale == "proxy" and self.kind not in ("calibrated_effect", "exact", "direction"):
            raise ValueError("proxy entries are judged against calibration (calibrated_effect), exact "
                             "counts or a paper's direction (direction), never against a paper's number")
        if self.seed_spread is not None and self.kind != "direction":
            raise ValueError("seed_spread widens one-seed intervals of kind direction only")
        if self.kind == "direction" and (self.role != "finding" or self.tolerance != 0):
            raise ValueError("kind direction (the sign of a paper's effect, beyond a margin `value`) is "
                             "for findings only, with tolerance 0")
        if self.source_kind == "calibration" and self.kind != "calibrated_effect":
            raise ValueError("source_kind calibration goes with kind calibrated_effect")
        return self

    def key(self) -> tuple[str, str]:
        return (self.claim, self.scale)


class ExpectedFile(Strict):
    suite: str
    entries: list[ExpectedEntry]


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Walk the model along an error location to list the keys allowed where an extra key was."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = nested[0] if nested else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def describe_validation_error(path: Path, exc: ValidationError, model: type[BaseModel]) -> InputError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        allowed = _allowed_fields(model, loc)
        msg = f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
    if len(exc.errors()) > 1:
        msg += f" (and {len(exc.errors()) - 1} more problem(s))"
    return InputError(path, field, msg)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, "(file)", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "(file)", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(parse)"
        raise InputError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None


def parse(path: Path, model: type[BaseModel], data: Any):
    if not isinstance(data, dict):
        raise InputError(path, "(top level)", "must be a mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(path, exc, model) from None


def load_suite(path: Path) -> Suite:
    suite = parse(path, Suite, read_yaml(path))
    if suite.suite != path.stem:
        raise InputError(path, "suite", f"must equal the file name {path.stem!r}")
    return suite


def load_expected(path: Path) -> ExpectedFile:
    exp = parse(path, ExpectedFile, read_yaml(path))
    if exp.suite != path.stem:
        raise InputError(path, "suite", f"must equal the file name {path.stem!r}")
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(exp.entries):
        if entry.key() in seen:
            raise InputError(path, f"entries.{i}", f"duplicate claim/scale {entry.key()}")
        seen.add(entry.key())
    return exp
