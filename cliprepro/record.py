"""Result records: one JSON file per run, atomic, content-hash named, schema-versioned, validated on read.

A record stores the expected entries it was judged against, so `cliprepro report` can re-judge it
later and tell a stale record (judged against an older entry) from a current one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from cliprepro.errors import InputError
from cliprepro.claims import ExpectedEntry, Measured, Over, Role, Scale, migrate_v1
from cliprepro.spec import describe_validation_error

# 2: expected entries are claim kinds with their own fields; metrics say what n counts (`over`)
# and carry the evaluation s.e. of a mean over seeds. Schema 1 records are migrated on read.
SCHEMA_VERSION = 2
RecordType = Literal["run", "calibration", "negative_control"]
Verdict = Literal["reproduced", "not_reproduced", "inconclusive", "skipped", "error"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Strict):
    """One measurement: the value, its interval over n rounds / seeds, and the raw samples."""
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 1
    confidence: float | None = None
    unit: str = ""
    samples: list[float] = []  # per round, or per seed (the seed's mean)
    over: Over | None = None  # what n counts; over seeds, lo / hi cover evaluation sampling only
    eval_se: float | None = None  # over seeds: evaluation-sampling s.e. of the mean
    data_wait_fraction: float | None = None  # a speed from a training loop: share of its time waiting for data
    # a timed speed whose every sweep was disturbed (runners/timing/timing.py): how, else None
    timing_disturbed: str | None = None

    @model_validator(mode="after")
    def _counted(self) -> "Metric":
        # n = 0 marks a missing measurement (value NaN); a measured value has n >= 1, which the
        # intervals divide by
        if self.value is not None and math.isfinite(self.value) and self.n < 1:
            raise ValueError(f"n is {self.n}: a measured value needs n >= 1 (0 only beside a missing one)")
        return self

    def measured(self) -> Measured:
        return Measured(self.value, self.lo, self.hi, self.n, self.over, self.eval_se, tuple(self.samples),
                        self.data_wait_fraction, self.timing_disturbed)


class ClaimResult(_Strict):
    claim: str
    scale: Scale
    role: Role
    metric: str
    verdict: Verdict
    reason: str
    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    threshold: float | None = None
    beside: dict[str, float] = {}  # e.g. the FLOPs-ideal ratio printed beside a speed ratio
    explanation: str = ""  # a miss re-measured over declared confounders: which setting closes it


class Record(_Strict):
    schema_version: Literal[1, 2]
    record_type: RecordType
    suite: str
    suite_version: int
    scale: Scale
    negative_control: str | None = None
    status: Literal["completed", "skipped", "error"]
    message: str = ""
    expected: list[ExpectedEntry]
    results: list[ClaimResult]
    metrics: dict[str, Metric] = {}
    points: list[dict[str, Any]] = []
    config: dict[str, Any]
    provenance: dict[str, Any]
    inputs: dict[str, Any] = {}
    timings: dict[str, float] = {}


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=True) + "\n"


def record_id(record: Record) -> str:
    return data_id(record.model_dump(mode="json"))


def data_id(data: dict) -> str:
    """The id of a record's stored content (so fields added to the schema later, with defaults,
    do not change the id of records written before them)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]


def file_name(record: Record, rid: str) -> str:
    return f"{record.suite}__{record.scale}__{record.record_type}__{rid}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and os.replace: readers never see half a file."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """atomic_write_text's bytes (a checkpoint serialised to memory first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(record: Record, folder: Path) -> tuple[str, Path]:
    rid = record_id(record)
    path = folder / file_name(record, rid)
    if not path.exists():  # same content, same name: never rewrite a record
        atomic_write_text(path, canonical_json(record.model_dump(mode="json")))
    return rid, path


def read(path: Path) -> tuple[str, Record]:
    """Load and validate one record; its id must match its content (records are never edited)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise InputError(path, "(file)", f"not a readable JSON record: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") not in (1, SCHEMA_VERSION):
        raise InputError(path, "schema_version", f"must be 1 or {SCHEMA_VERSION}")
    try:
        migrated = migrate(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # fields of the wrong type or missing
        raise InputError(path, "(schema 1 content)", f"cannot be read as a schema 1 record "
                         f"({type(exc).__name__}: {exc}); metrics must map names to objects, "
                         "expected must be a list of entries") from None
    try:
        record = Record.model_validate(migrated)
    except ValidationError as exc:
        raise describe_validation_error(path, exc, Record) from None
    rid = data_id(data)
    if not path.name.endswith(f"__{rid}.json"):
        raise InputError(path, "(content)", f"content hash {rid} does not match the file name: "
                         "the record was edited after it was written")
    return rid, record


V1_SEED_METRICS = ("gain_", "contrast_", "best_of_", "in1k_gain_")  # the train runner's paired gains


def migrate(data: dict) -> dict:
    """A schema 1 record in today's fields (the stored file and its id are untouched)."""
    if data.get("schema_version") != 1:
        return data
    out = dict(data)
    out["expected"] = [migrate_v1(e) if isinstance(e, dict) else e for e in data.get("expected", [])]
    metrics = {}
    for name, m in (data.get("metrics") or {}).items():
        m = dict(m)
        if name.startswith(V1_SEED_METRICS) and m.get("unit") == "pp":
            m["over"] = "seeds"
        elif name.startswith("content_words_"):
            m["over"] = "examples"
        elif m.get("lo") == m.get("hi") == m.get("value"):
            m["over"] = "exact"
        elif m.get("samples") and name.startswith(("acc1_", "recall")):
            m["over"] = "seeds"
        elif m.get("samples"):
            m["over"] = "rounds"
        metrics[name] = m
    out["metrics"] = metrics
    return out


def find(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []
