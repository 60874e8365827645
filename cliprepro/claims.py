"""Claim kinds: one type per way a claim is judged, each with fields that say what they mean.

An expected entry (expected/<suite>.yaml) is one of these classes, chosen by its `kind`; each
knows its threshold, judges a measurement (`judge`) and says why it could never be judged
(`problems`). The judging table is docs/verdicts.md. A missing or non-finite measurement is
`error`, never `not_reproduced` and never `reproduced`.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cliprepro.intervals import Z95, seed_interval

Scale = Literal["proxy", "gpu", "paper"]
Role = Literal["gate", "finding"]
SourceKind = Literal["primary", "secondary", "derived", "calibration"]
Over = Literal["seeds", "rounds", "examples", "exact", "modelled"]


@dataclass(frozen=True)
class Measured:
    """One measured value, its interval, and what its n counts (`over`).

    Over seeds, lo / hi are the evaluation-sampling interval only; the claim widens it by its
    seed spread (cliprepro.intervals). Over rounds, examples or a model, lo / hi are final."""
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 1
    over: Over | None = None
    eval_se: float | None = None
    samples: tuple[float, ...] = field(default=())
    data_wait_fraction: float | None = None  # a speed measured on a training loop: time waiting for data
    timing_disturbed: str | None = None  # a timed speed whose every sweep was disturbed: how


def eval_se_of(m: Measured) -> float:
    """The evaluation s.e. of a mean over seeds: as the runner gave it, or (records of schema 1)
    derived from its 95% interval (over seeds, a wider one: conservative)."""
    assert m.lo is not None and m.hi is not None
    return m.eval_se if m.eval_se is not None else (m.hi - m.lo) / (2 * Z95)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SeedSpread(Strict):
    """Spread (standard deviation) of a one-seed value between trainings that differ only in seed."""
    sd: float = Field(gt=0)
    df: int | None = Field(None, ge=1, description=(
        "degrees of freedom of the estimate (per-seed values - 1); null: declared, taken as known"))
    source: str = Field(description="the calibration records or runs it was estimated from")


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _one_sided(lo: float, hi: float, thr: float, upward: bool, how: str) -> tuple[str, str]:
    if upward:
        if lo >= thr:
            return "reproduced", f"lower bound {lo:.4g} >= threshold {thr:.4g}{how}"
        if hi < thr:
            return "not_reproduced", f"upper bound {hi:.4g} < threshold {thr:.4g}{how}"
    else:
        if hi <= thr:
            return "reproduced", f"upper bound {hi:.4g} <= threshold {thr:.4g}{how}"
        if lo > thr:
            return "not_reproduced", f"lower bound {lo:.4g} > threshold {thr:.4g}{how}"
    return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] straddles threshold {thr:.4g}{how}"


# A speed measured on a training loop whose step waited for data longer than this share of its
# time is judged inconclusive: it measures the loader, not the mechanism (docs/verdicts.md).
MAX_DATA_WAIT_FRACTION = 0.10
RULES = {"rounds": "order-statistic interval of the median over rounds", "exact": "exact count",
         "examples": "bootstrap over examples", "modelled": "modelled interval"}


class Claim(Strict):
    claim: str
    scale: Scale
    metric: str = Field(description="name of the runner measurement judged")
    unit: str
    role: Role
    source: str
    source_kind: SourceKind
    negative_control: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _common(self):
        if self.role == "gate" and not self.negative_control:
            raise ValueError("a gate needs a negative_control (the mechanism switched off)")
        if self.source_kind == "calibration" and self.kind not in ("calibrated_effect", "exact"):
            raise ValueError("source_kind calibration goes with kind calibrated_effect (or exact, for "
                             "a deterministic metric)")
        if self.scale == "proxy" and self.kind not in ("calibrated_effect", "exact", "direction"):
            raise ValueError("proxy entries are judged against calibration (calibrated_effect), exact "
                             "counts or a paper's direction (direction), never against a paper's number")
        return self

    def key(self) -> tuple[str, str]:
        return (self.claim, self.scale)

    def threshold(self) -> float | None:
        return None

    def expected_value(self) -> float | None:
        return getattr(self, "value", None)

    def spread(self) -> SeedSpread | None:
        return getattr(self, "seed_spread", None)

    def interval(self, m: Measured) -> tuple[float, float, str]:
        """The interval this claim judges: over seeds, widened by the seed spread (one rule)."""
        assert m.value is not None and m.lo is not None and m.hi is not None
        if m.over != "seeds":
            return m.lo, m.hi, f" ({RULES[m.over]})" if m.over else ""
        spread = self.spread()
        se = eval_se_of(m)
        samples = list(m.samples) if len(m.samples) == m.n else []
        iv = seed_interval(m.value, m.n, se, spread.sd if spread else None, spread.df if spread else None,
                           samples)
        return iv.lo, iv.hi, f" ({iv.rule})"

    uses_interval: ClassVar[bool] = True  # False: judged on the value alone (exact counts, released weights)

    def judge(self, m: Measured | None) -> tuple[str, str]:
        if self.expected_value() is None and self.kind == "calibrated_effect":
            return "error", "not calibrated yet: run `cliprepro calibrate` and commit its records"
        if m is None or m.value is None:
            return "error", f"no measurement of {self.metric!r}"
        if not _finite(m.value):
            return "error", f"measurement of {self.metric!r} is not finite ({m.value})"
        if m.data_wait_fraction is not None and m.data_wait_fraction > MAX_DATA_WAIT_FRACTION:
            return "inconclusive", (f"measured while the step waited for data {m.data_wait_fraction:.0%} of "
                                    f"the time (> {MAX_DATA_WAIT_FRACTION:.0%}): a data-bound speed says "
                                    "nothing about the step")
        if m.timing_disturbed:
            return "inconclusive", (f"timing disturbed: {m.timing_disturbed}; something else took the device "
                                    "while it was timed")
        if not self.uses_interval:
            return self._decide_value(m.value)
        if not _finite(m.lo, m.hi):
            return "error", f"{self.kind} needs an interval; {self.metric!r} has none"
        return self._decide(*self.interval(m))

    def _decide_value(self, value: float) -> tuple[str, str]:
        raise NotImplementedError

    def _decide(self, lo: float, hi: float, how: str) -> tuple[str, str]:
        raise NotImplementedError

    def problems(self) -> list[str]:
        """Why this entry could only ever be inconclusive, or cannot be what it says (empty: fine)."""
        return []


class _Absolute(Claim):
    """|measured − value| within an absolute tolerance; no interval is used."""
    value: float
    uses_interval: ClassVar[bool] = False

    def tolerance(self) -> float:
        raise NotImplementedError

    def _decide_value(self, value: float) -> tuple[str, str]:
        diff = abs(value - self.value)
        ok = diff <= self.tolerance() + 1e-12  # printed precision is inclusive
        return ("reproduced" if ok else "not_reproduced"), (
            f"|{value:.6g} - {self.value:g}| = {diff:.3g} {'within' if ok else 'outside'} "
            f"tolerance {self.tolerance():g}")


class ExactCount(_Absolute):
    """A count or a deterministic measurement (FLOPs, parameters, tokens, content words kept)."""
    kind: Literal["exact"]
    abs_tolerance: float = Field(ge=0, description="half the last printed digit (0 for an integer count)")

    def tolerance(self) -> float:
        return self.abs_tolerance


class ReleasedWeights(_Absolute):
    """Released weights on the paper's eval set: |measured − published| within the published
    rounding plus a pipeline allowance; the binomial interval is shown, not used."""
    kind: Literal["released_weights"]
    published_rounding: float = Field(ge=0, description="half the last printed digit of the number")
    pipeline_allowance: float = Field(0.3, ge=0, description="declared difference of evaluation pipelines")

    def tolerance(self) -> float:
        return self.published_rounding + self.pipeline_allowance


class _Ratio(Claim):
    value: float = Field(gt=0)
    rel_delta: float = Field(ge=0, lt=1, description="relative slack: threshold = value x (1 -/+ rel_delta)")
    planned_halfwidth: float = Field(gt=0, description="half-width of the interval the planned run reaches")

    def _decide(self, lo: float, hi: float, how: str) -> tuple[str, str]:
        return _one_sided(lo, hi, self.threshold(), self.kind == "at_least", how)

    def problems(self) -> list[str]:
        band = abs(self.value - self.threshold())
        if band < 1.5 * self.planned_halfwidth:
            return [f"band {band:.4g} is narrower than 1.5x the reachable interval half-width "
                    f"{self.planned_halfwidth:.4g}: it could only be inconclusive"]
        return []


class AtLeastRatio(_Ratio):
    """A speed-up at least `value`: lower bound >= value x (1 - rel_delta)."""
    kind: Literal["at_least"]

    def threshold(self) -> float:
        return self.value * (1 - self.rel_delta)


class AtMostRatio(_Ratio):
    """A cost at most `value`: upper bound <= value x (1 + rel_delta)."""
    kind: Literal["at_most"]

    def threshold(self) -> float:
        return self.value * (1 + self.rel_delta)


class TwoSidedBand(Claim):
    """The interval inside value ± band_halfwidth (a trained accuracy, a modelled estimate)."""
    kind: Literal["two_sided"]
    value: float
    band_halfwidth: float = Field(gt=0)
    planned_halfwidth: float = Field(gt=0, description="half-width of the interval the planned run reaches")
    seed_spread: SeedSpread | None = None

    def _decide(self, lo: float, hi: float, how: str) -> tuple[str, str]:
        a, b = self.value - self.band_halfwidth, self.value + self.band_halfwidth
        if a <= lo and hi <= b:
            return "reproduced", f"interval [{lo:.4g}, {hi:.4g}] inside [{a:.4g}, {b:.4g}]{how}"
        if hi < a or lo > b:
            return "not_reproduced", f"interval [{lo:.4g}, {hi:.4g}] outside [{a:.4g}, {b:.4g}]{how}"
        return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] overlaps the edge of [{a:.4g}, {b:.4g}]{how}"

    def problems(self) -> list[str]:
        if self.band_halfwidth < 1.5 * self.planned_halfwidth:
            return [f"band {self.band_halfwidth:.4g} is narrower than 1.5x the reachable interval "
                    f"half-width {self.planned_halfwidth:.4g}: it could only be inconclusive"]
        return []


class ControlCalibration(Strict):
    """The gate's negative control, run once by `cliprepro calibrate` on the calibration's models."""
    record: str = Field(description="id of the control's calibration record")
    value: float
    seed_sd: float = Field(0.0, ge=0, description="over seeds: spread of its per-seed values (0: deterministic)")
    eval_se: float = Field(0.0, ge=0, description="over seeds: its evaluation s.e.")


class CalibratedEffect(Claim):
    """A proxy effect against this project's calibration runs: the interval's bound keeps at least
    `kept_fraction` of the calibrated effect over `null_value` (1 for ratios, 0 for differences)."""
    kind: Literal["calibrated_effect"]
    value: float | None = Field(description="the calibrated effect; null only before calibration")
    null_value: float
    kept_fraction: float = Field(gt=0, le=1)
    calibration: list[str] = []
    calibration_spread: float | None = Field(None, ge=0, description="SD of the run-level values")
    planned_halfwidth: float | None = Field(None, description="median half-width the calibration runs reached")
    seed_spread: SeedSpread | None = Field(None, description="over seeds: from the calibration runs' per-seed values")
    eval_se: float | None = Field(None, ge=0, description="over seeds: median evaluation s.e. of the calibration runs")
    planned_n: int | None = Field(None, ge=1, description="n a run is judged over: over seeds, the seeds a CI "
                                  "run trains; over rounds, those of each calibration run")
    control_calibration: ControlCalibration | None = None

    @model_validator(mode="after")
    def _calibrated(self):
        if self.calibration and len(self.calibration) < 3:
            raise ValueError("calibrated_effect needs >= 3 calibration record ids (or none yet)")
        if bool(self.calibration) != (self.value is not None):
            raise ValueError("a calibrated_effect has both value and calibration ids, or neither")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be finite")
        return self

    def threshold(self) -> float | None:
        if self.value is None:
            return None
        return self.null_value + self.kept_fraction * (self.value - self.null_value)

    def _decide(self, lo: float, hi: float, how: str) -> tuple[str, str]:
        assert self.value is not None
        return _one_sided(lo, hi, self.threshold(), self.value >= self.null_value, how)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        if self.value is None:
            return ["not calibrated yet: run `cliprepro calibrate` and commit its records"]
        problems = []
        effect = abs(self.value - self.null_value)
        band = abs(self.value - (self.threshold() or 0.0))
        if self.planned_halfwidth is not None and band < 1.5 * self.planned_halfwidth:
            problems.append(f"band {band:.4g} is narrower than 1.5x the reachable interval half-width "
                            f"{self.planned_halfwidth:.4g}: it could only be inconclusive")
        if self.calibration_spread == 0:
            problems.append("calibration spread is 0: a deterministic metric is an exact gate (kind exact), "
                            "not a calibrated effect")
        elif self.role == "gate" and (self.calibration_spread is None or effect < 4 * self.calibration_spread):
            problems.append(f"effect {effect:.4g} is not >= 4x its calibration spread "
                            f"{self.calibration_spread}: it cannot be a gate")
        return problems


class Direction(Claim):
    """A paper's direction at proxy scale (findings only): reproduced when the interval's lower
    bound is above the pre-registered margin, not_reproduced when its upper bound is below it."""
    kind: Literal["direction"]
    role: Literal["finding"]
    margin: float = Field(description="pre-registered: the effect must exceed this, in `unit`")
    seed_spread: SeedSpread | None = None

    def threshold(self) -> float:
        return self.margin

    def expected_value(self) -> float:
        return self.margin

    def _decide(self, lo: float, hi: float, how: str) -> tuple[str, str]:
        if lo > self.margin:
            return "reproduced", f"lower bound {lo:.4g} > margin {self.margin:.4g}: the paper's direction{how}"
        if hi < self.margin:
            return "not_reproduced", f"upper bound {hi:.4g} < margin {self.margin:.4g}: not the paper's direction{how}"
        return "inconclusive", f"interval [{lo:.4g}, {hi:.4g}] includes margin {self.margin:.4g}{how}"


# Paired kinds (a soup against its best ingredient, time-to-target) join this union as classes.
ExpectedEntry = Annotated[Union[ExactCount, ReleasedWeights, AtLeastRatio, AtMostRatio, TwoSidedBand,
                                CalibratedEffect, Direction], Field(discriminator="kind")]
KINDS: tuple[str, ...] = tuple(typing.get_args(cls.model_fields["kind"].annotation)[0]
                               for cls in typing.get_args(typing.get_args(ExpectedEntry)[0]))


def migrate_v1(entry: dict) -> dict:
    """An expected entry as schema 1 stored it (one `tolerance` meaning four things, `value` as a
    direction's margin, `seed_spread` a bare number) in the fields of its kind today."""
    d = dict(entry)
    kind, tol = d.get("kind"), d.pop("tolerance", None)
    if kind == "exact":
        d["abs_tolerance"] = tol
    elif kind in ("at_least", "at_most"):
        d["rel_delta"] = tol
    elif kind == "two_sided":
        d["band_halfwidth"] = tol
    elif kind == "released_weights":  # schema 1 wrote printed rounding + the 0.3 pp allowance as one
        allowance = 0.3 if tol is not None and tol >= 0.3 else 0.0
        d["published_rounding"], d["pipeline_allowance"] = round(tol - allowance, 9), allowance
    elif kind == "calibrated_effect":
        d["kept_fraction"] = tol
    elif kind == "direction":
        d["margin"] = d.pop("value")
    spread = d.pop("seed_spread", None)
    if spread is not None:
        d["seed_spread"] = {"sd": spread, "df": None, "source": "declared in schema 1 (no degrees of freedom)"}
    for key in [k for k, v in d.items() if v is None and k not in ("value",)]:
        d.pop(key)  # schema 1 stored unset optional fields as null
    if kind != "calibrated_effect":
        d.pop("null_value", None), d.pop("calibration", None), d.pop("calibration_spread", None)
    if kind not in ("calibrated_effect", "at_least", "at_most", "two_sided"):
        d.pop("planned_halfwidth", None)
    return d


def pass_probability(entry: Claim, kept_fraction: float | None = None):
    """P(an honest rerun passes) and P(the negative control fails) for a gate, from its
    calibration (spread at its upper confidence bound; the control as its calibration run measured
    it); None for findings and uncalibrated gates. `kept_fraction` replaces the entry's."""
    from cliprepro import intervals

    if entry.role != "gate":
        return None
    if isinstance(entry, ExactCount):
        return intervals.PassProbability(1.0, 1.0, "deterministic count")
    if not isinstance(entry, CalibratedEffect) or entry.value is None:
        return None
    if kept_fraction is not None:
        entry = entry.model_copy(update={"kept_fraction": kept_fraction})
    upward, thr = entry.value >= entry.null_value, entry.threshold()
    assert thr is not None
    control = entry.control_calibration
    if entry.seed_spread is not None and entry.planned_n and entry.seed_spread.df:
        model = intervals.ControlModel(control.value, control.seed_sd, control.eval_se) if control else None
        return intervals.pass_probability_seeds(entry.value, entry.null_value, thr, entry.planned_n,
                                                entry.seed_spread.sd, entry.seed_spread.df,
                                                entry.eval_se or 0.0, upward, model)
    if entry.calibration_spread is None or entry.planned_halfwidth is None:
        return None
    return intervals.pass_probability_runs(entry.value, control.value if control else entry.null_value, thr,
                                           entry.calibration_spread, len(entry.calibration),
                                           entry.planned_halfwidth, entry.planned_halfwidth, upward,
                                           ratio=entry.null_value == 1.0)
