"""Shared fixtures: the repo root, a copy of it to break, and record builders."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cliprepro.record import ClaimResult, Metric, Record
from cliprepro.claims import CalibratedEffect, ExpectedEntry
from cliprepro.record import SCHEMA_VERSION

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def root_copy(tmp_path: Path) -> Path:
    """suites/, expected/ and results/ copied into a scratch root (safe to break)."""
    for name in ("suites", "expected", "results"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def gate_entry(**kw) -> ExpectedEntry:
    data = dict(claim="g", scale="proxy", metric="speedup", value=2.0, unit="x",
                kind="calibrated_effect", kept_fraction=0.5, null_value=1.0, role="gate",
                negative_control="off", calibration=["a", "b", "c"], calibration_spread=0.05,
                planned_halfwidth=0.1, source="calibration", source_kind="calibration")
    data.update(kw)
    return CalibratedEffect(**data)


def make_record(entry: ExpectedEntry, value: float, lo: float, hi: float, verdict: str, *,
                suite: str = "flip_speedup", started: str = "2026-01-01T00:00:00+00:00",
                record_type: str = "run", device: str = "cpu: test", samples: list[float] | None = None) -> Record:
    return Record(
        schema_version=SCHEMA_VERSION, record_type=record_type, suite=suite, suite_version=1, scale=entry.scale,
        status="completed", expected=[entry],
        results=[ClaimResult(claim=entry.claim, scale=entry.scale, role=entry.role, metric=entry.metric,
                             verdict=verdict, reason="test", value=value, lo=lo, hi=hi, n=9)],
        metrics={entry.metric: Metric(value=value, lo=lo, hi=hi, n=len(samples) if samples else 9, unit="x",
                                      over="rounds", samples=samples or [])},
        config={}, provenance={"started_utc": started, "device": {"device_class": device},
                               "git": {"commit": "0" * 40, "dirty": False},
                               "packages": {"installed_sha256": "0" * 64, "versions": {"torch": "2.14.1"}}})
