"""Schemas for suites/*.yaml and expected/*.yaml, and loading them with clear errors.

Unknown keys are errors everywhere (extra="forbid"); a bad file raises InputError naming the
file, the field and what is allowed, which the CLI turns into exit status 2.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cliprepro.claims import KINDS, ExpectedEntry, Scale
from cliprepro.errors import InputError
from runners import RUNNERS

RunnerName = Literal[RUNNERS]  # the one registry: runners.RUNNERS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ScalePlan(Strict):
    hardware: str = Field(description="what this scale runs on, for a human")
    runtime_s: float = Field(gt=0, description=(
        "expected wall time (a CPU scale: on the reference machine, cliprepro.runflow.REFERENCE_PACE_MS); a run "
        "over 1.5x is an error, a CPU scale's limit widened by how much slower this machine's pace is"))
    requires: list[Literal["cuda"]] = []
    params: dict[str, Any] = Field({}, description=(
        "runner parameters of this scale, overriding the suite's `params` key by key"))
    inherit_params: bool = Field(True, description=(
        "false: this scale's params stand alone (a paper-scale recipe has another schema)"))
    runner: RunnerName | None = Field(None, description=(
        "this scale's own runner (default: the suite's), e.g. a proxy that trains and a paper "
        "scale that loads the released weights"))


class NegativeControl(Strict):
    gates: list[str] = Field(min_length=1, description="claim ids of the gates this control must fail")
    description: str
    kind: Literal["mechanism_off", "sensitivity"] = Field("mechanism_off", description=(
        "mechanism_off: the mechanism the gates check is switched off; sensitivity: a perturbation "
        "(where a gate has no mechanism to switch off, e.g. a parameter count), named as such"))
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
    params: dict[str, Any] = Field({}, description=(
        "runner parameters shared by every scale; each scale and control overrides only what differs"))
    ci_scale: Scale = Field(description="the scale CI runs (proxy, or paper for CPU-exact checks)")
    scales: dict[Scale, ScalePlan]
    negative_controls: dict[str, NegativeControl] = {}

    @model_validator(mode="after")
    def _ci_scale_planned(self) -> "Suite":
        if self.ci_scale not in self.scales:
            raise ValueError(f"ci_scale {self.ci_scale!r} has no plan under scales "
                             f"(planned: {sorted(self.scales)})")
        return self

    def params_for(self, scale: str, control: str | None = None) -> dict[str, Any]:
        """The one merge: the suite's params, then the scale's, then a control's overrides (each
        replaces whole top-level keys)."""
        plan = self.scales[scale]
        merged = {**(self.params if plan.inherit_params else {}), **plan.params}
        if control:
            merged.update(self.negative_controls[control].overrides)
        return merged

    def runner_at(self, scale: str) -> str:
        """The runner of one scale: its own, else the suite's."""
        return self.scales[scale].runner or self.runner

    def gates_of(self, control: str) -> list[str]:
        return self.negative_controls[control].gates


class ExpectedFile(Strict):
    suite: str
    entries: list[ExpectedEntry]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation (list[...], Annotated[Union[...], ...], X | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    inner = list(getattr(annotation, "__args__", ()))
    if hasattr(annotation, "__metadata__"):  # Annotated[X, ...]: X is __origin__
        inner = [annotation.__origin__]
    return [m for arg in inner for m in _models_in(arg)]


def _kind_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    args = getattr(field.annotation, "__args__", ()) if field else ()
    return args[0] if len(args) == 1 else None


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Walk the model along an error location to list the keys allowed where an extra key was
    (in a discriminated union the location names the kind, which picks the class)."""
    current: list[type[BaseModel]] = [model]
    for part in loc[:-1]:
        if isinstance(part, int) or not current:
            continue
        by_kind = {_kind_of(m): m for m in current}
        if len(current) > 1 and part in by_kind:
            current = [by_kind[part]]
            continue
        field = current[0].model_fields.get(part) if len(current) == 1 else None
        if field is not None:  # else a dict key (a scale, a control's name): same model below
            current = _models_in(field.annotation)
    return sorted(current[0].model_fields) if len(current) == 1 else None


def describe_validation_error(path: Path, exc: ValidationError, model: type[BaseModel]) -> InputError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    # a discriminated union puts the kind in the location (entries.0.at_least.role): not a field
    field = ".".join(str(p) for p in loc if p not in KINDS) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's message
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the kind picks the class
        field += ".kind"
        allowed = ", ".join(KINDS)
        msg = (f"unknown kind {err.get('ctx', {}).get('tag')!r}; allowed: {allowed}"
               if err["type"] == "union_tag_invalid" else f"missing; allowed: {allowed}")
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
