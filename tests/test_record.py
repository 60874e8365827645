"""Unit tests for cliprepro.record: content-hash named, atomic, schema-versioned result records."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from cliprepro import record as rec
from cliprepro.errors import InputError
from cliprepro.record import (
    SCHEMA_VERSION,
    ClaimResult,
    Metric,
    Record,
    atomic_write_text,
    canonical_json,
    read,
    record_id,
    write,
)
from cliprepro.claims import ExactCount


def make_record(**over) -> Record:
    entry = ExactCount.model_validate(dict(
        claim="flops", scale="paper", metric="gflops", value=4.4, unit="GFLOPs", kind="exact",
        abs_tolerance=0.05, role="finding", source="paper Table 2", source_kind="primary"))
    fields = dict(
        schema_version=SCHEMA_VERSION, record_type="run", suite="vit_flops", suite_version=2, scale="paper",
        status="completed", expected=[entry],
        results=[ClaimResult(claim="flops", scale="paper", role="finding", metric="gflops",
                             verdict="reproduced", reason="|4.41 - 4.4| = 0.01 within tolerance 0.05",
                             value=4.41, lo=4.41, hi=4.41, n=1)],
        metrics={"gflops": Metric(value=4.41, lo=4.41, hi=4.41, unit="GFLOPs", samples=[4.41])},
        config={"model": "ViT-B-16", "image_size": 224},
        provenance={"git": {"commit": "abc", "dirty": False}, "seed": 0},
        timings={"total_s": 1.5},
    )
    fields.update(over)
    return Record.model_validate(fields)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestRecordId:
    def test_is_sixteen_hex_digits(self):
        assert re.fullmatch(r"[0-9a-f]{16}", record_id(make_record()))

    def test_same_content_same_id(self):
        a = make_record(config={"model": "ViT-B-16", "image_size": 224})
        b = make_record(config={"image_size": 224, "model": "ViT-B-16"})  # key order differs
        assert record_id(a) == record_id(b)

    @pytest.mark.parametrize(
        "over",
        [
            dict(suite_version=3),
            dict(scale="gpu"),
            dict(record_type="calibration"),
            dict(status="error", message="boom"),
            dict(config={"model": "ViT-B-16", "image_size": 256}),
            dict(provenance={"git": {"commit": "abc", "dirty": True}, "seed": 0}),
            dict(timings={"total_s": 1.6}),
            dict(negative_control="no_dropout"),
        ],
    )
    def test_any_change_changes_id(self, over):
        assert record_id(make_record(**over)) != record_id(make_record())


class TestWriteRead:
    def test_name_is_suite_scale_type_and_hash(self, tmp_path):
        record = make_record()
        rid, path = write(record, tmp_path)
        assert rid == record_id(record)
        assert path == tmp_path / f"vit_flops__paper__run__{rid}.json"
        assert path.is_file()

    def test_creates_folder(self, tmp_path):
        folder = tmp_path / "results" / "vit_flops"
        _, path = write(make_record(), folder)
        assert path.parent == folder and path.is_file()

    def test_round_trip(self, tmp_path):
        record = make_record()
        rid, path = write(record, tmp_path)
        got_id, got = read(path)
        assert got_id == rid
        assert got == record
        assert got.model_dump(mode="json") == record.model_dump(mode="json")

    def test_file_is_canonical_json(self, tmp_path):
        record = make_record()
        _, path = write(record, tmp_path)
        text = path.read_text()
        assert text == canonical_json(record.model_dump(mode="json"))
        data = json.loads(text)
        assert data["schema_version"] == SCHEMA_VERSION
        assert list(data) == sorted(data)  # sorted keys: the hash does not depend on field order
        assert data["results"][0]["verdict"] == "reproduced"

    def test_non_finite_metrics_round_trip(self, tmp_path):
        record = make_record(metrics={"x": Metric(value=float("nan"), lo=float("-inf"),
                                                  hi=float("inf"))})
        rid, path = write(record, tmp_path)
        got_id, got = read(path)
        assert got_id == rid
        assert math.isnan(got.metrics["x"].value)
        assert (got.metrics["x"].lo, got.metrics["x"].hi) == (float("-inf"), float("inf"))

    def test_same_content_same_name_and_no_rewrite(self, tmp_path, monkeypatch):
        rid1, path1 = write(make_record(), tmp_path)
        before = path1.read_bytes()

        def no_rewrite(path, text):
            raise AssertionError(f"rewrote {path}")

        monkeypatch.setattr(rec, "atomic_write_text", no_rewrite)
        rid2, path2 = write(make_record(), tmp_path)
        assert (rid2, path2) == (rid1, path1)
        assert path1.read_bytes() == before
        assert files_in(tmp_path) == [path1.name]

    def test_different_content_is_a_second_file(self, tmp_path):
        _, p1 = write(make_record(), tmp_path)
        _, p2 = write(make_record(suite_version=3), tmp_path)
        assert p1 != p2
        assert files_in(tmp_path) == sorted([p1.name, p2.name])

    def test_no_temp_files_left(self, tmp_path):
        write(make_record(), tmp_path)
        assert [n for n in files_in(tmp_path) if n.endswith(".tmp")] == []


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, sort_keys=True, indent=1))


class TestReadErrors:
    @pytest.mark.parametrize(
        "change",
        [
            lambda d: d.update(message="edited"),
            lambda d: d["results"][0].update(verdict="not_reproduced"),
            lambda d: d["results"][0].update(value=4.5),
            lambda d: d["expected"][0].update(abs_tolerance=0.5),
            lambda d: d["config"].update(image_size=336),
            lambda d: d["metrics"]["gflops"]["samples"].append(4.42),
        ],
        ids=["message", "verdict", "value", "expected-tolerance", "config", "samples"],
    )
    def test_edited_record_is_rejected(self, tmp_path, change):
        _, path = write(make_record(), tmp_path)
        _edit(path, change)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "(content)"
        assert str(info.value).startswith(f"{path}: (content): ")
        assert "edited" in str(info.value)

    def test_renamed_record_is_rejected(self, tmp_path):
        _, path = write(make_record(), tmp_path)
        moved = path.with_name("vit_flops__paper__run__0000000000000000.json")
        path.rename(moved)
        with pytest.raises(InputError, match=r"\(content\)"):
            read(moved)

    @pytest.mark.parametrize("version", [0, 3, "1", None, [1]])
    def test_wrong_schema_version(self, tmp_path, version):
        _, path = write(make_record(), tmp_path)
        _edit(path, lambda d: d.update(schema_version=version))
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "schema_version"
        assert str(info.value) == f"{path}: schema_version: must be 1 or {SCHEMA_VERSION}"

    def test_missing_schema_version(self, tmp_path):
        _, path = write(make_record(), tmp_path)
        _edit(path, lambda d: d.pop("schema_version"))
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "schema_version"

    @pytest.mark.parametrize("text", ["[]", "42", '"record"', "null"])
    def test_not_an_object(self, tmp_path, text):
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "schema_version"

    @pytest.mark.parametrize("text", ["", "{", "{'a': 1}", "not json"])
    def test_not_json(self, tmp_path, text):
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "(file)"
        assert str(info.value).startswith(f"{path}: (file): not a readable JSON record")

    @pytest.mark.parametrize("data", [b"\xff\xfe{}", b'{"schema_version": 1, "suite": "caf\xe9"}'])
    def test_not_utf8_is_input_error(self, tmp_path, data):
        path = tmp_path / "x.json"
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == "(file)"

    def test_missing_file(self, tmp_path):
        with pytest.raises(InputError) as info:
            read(tmp_path / "absent.json")
        assert info.value.field == "(file)"

    @pytest.mark.parametrize(
        ("change", "field", "part"),
        [
            (lambda d: d.update(colour="red"), "colour", "unknown key; allowed: "),
            (lambda d: d["results"][0].update(colour="red"), "results.0.colour",
             "unknown key; allowed: beside, claim, explanation, hi"),
            (lambda d: d["results"][0].update(verdict="passed"), "results.0.verdict", "reproduced"),
            (lambda d: d.update(status="done"), "status", "completed"),
            (lambda d: d.pop("provenance"), "provenance", "required"),
        ],
    )
    def test_invalid_content_names_the_field(self, tmp_path, change, field, part):
        _, path = write(make_record(), tmp_path)
        _edit(path, change)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.field == field
        assert part in str(info.value)

    def test_unknown_record_key_lists_record_keys(self, tmp_path):
        _, path = write(make_record(), tmp_path)
        _edit(path, lambda d: d.update(colour="red"))
        with pytest.raises(InputError) as info:
            read(path)
        assert str(info.value).split("allowed: ", 1)[1].split(", ") == sorted(Record.model_fields)


class TestAtomicWriteText:
    def test_writes_text(self, tmp_path):
        path = tmp_path / "a" / "b.txt"
        atomic_write_text(path, "hello\n")
        assert path.read_text() == "hello\n"
        assert files_in(path.parent) == ["b.txt"]

    def test_replaces_existing(self, tmp_path):
        path = tmp_path / "b.txt"
        path.write_text("old")
        atomic_write_text(path, "new")
        assert path.read_text() == "new"
        assert files_in(tmp_path) == ["b.txt"]

    @pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
    @pytest.mark.parametrize("where", ["replace", "fsync"])
    def test_failure_leaves_no_temp_file(self, tmp_path, monkeypatch, exc, where):
        path = tmp_path / "b.txt"

        def boom(*args, **kwargs):
            raise exc

        monkeypatch.setattr(os, where, boom)
        with pytest.raises(type(exc)):
            atomic_write_text(path, "text")
        monkeypatch.undo()
        assert files_in(tmp_path) == []

    def test_failure_keeps_the_old_file(self, tmp_path, monkeypatch):
        path = tmp_path / "b.txt"
        path.write_text("old")

        def boom(*args, **kwargs):
            raise OSError("cannot replace")

        monkeypatch.setattr(os, "replace", boom)
        with pytest.raises(OSError, match="cannot replace"):
            atomic_write_text(path, "new")
        monkeypatch.undo()
        assert path.read_text() == "old"
        assert files_in(tmp_path) == ["b.txt"]

    def test_failed_record_write_leaves_nothing(self, tmp_path, monkeypatch):
        def boom(*args, **kwargs):
            raise OSError("cannot replace")

        monkeypatch.setattr(os, "replace", boom)
        with pytest.raises(OSError):
            write(make_record(), tmp_path)
        monkeypatch.undo()
        assert files_in(tmp_path) == []


class TestSchemaGrowth:
    def test_a_record_written_before_a_new_default_field_still_reads(self, tmp_path):
        """Ids hash the stored content: a field added to the schema later (with a default) must
        not make older records look edited."""
        from cliprepro.record import data_id, read, write
        from tests.conftest import gate_entry, make_record

        _rid, path = write(make_record(gate_entry(), 1.9, 1.8, 2.0, "reproduced"), tmp_path)
        data = json.loads(path.read_text())
        for entry in data["expected"]:
            del entry["seed_spread"]  # as written before seed_spread existed
        old = tmp_path / f"flip_speedup__proxy__run__{data_id(data)}.json"
        old.write_text(json.dumps(data))
        rid, record = read(old)
        assert rid == data_id(data) and record.expected[0].seed_spread is None


class TestMalformedContent:
    """A record whose fields have the wrong shape is bad input (exit 2, naming the file), never a
    traceback: schema 1 content the migration cannot read, a measured value counted over n = 0."""

    @pytest.mark.parametrize("change", [
        lambda d: d.update(metrics=[1, 2]),
        lambda d: d.update(metrics={"gflops": 4.4}),
        lambda d: d.update(expected=5),
        lambda d: d["expected"][0].pop("value"),   # a v1 direction moves its value to margin
        lambda d: d["expected"][0].update(kind="released_weights", tolerance=None),
    ], ids=["metrics-list", "metric-number", "expected-number", "no-value", "no-tolerance"])
    def test_schema1(self, tmp_path, change):
        data = json.loads(canonical_json(make_record().model_dump(mode="json")))
        data.update(schema_version=1, results=[], expected=[dict(
            claim="c", scale="proxy", metric="m", unit="x", role="finding", source="s", source_kind="primary",
            kind="direction", value=1.0, tolerance=0.0)])
        change(data)
        path = tmp_path / f"vit_flops__paper__run__{rec.data_id(data)}.json"
        path.write_text(canonical_json(data))
        with pytest.raises(InputError) as info:
            read(path)
        assert str(info.value).startswith(f"{path}: ")

    def test_a_measured_value_over_no_samples(self, tmp_path):
        _, path = write(make_record(), tmp_path)
        data = json.loads(path.read_text())
        data["metrics"]["gflops"]["n"] = 0
        bad = tmp_path / "x" / f"vit_flops__paper__run__{rec.data_id(data)}.json"
        bad.parent.mkdir()
        bad.write_text(canonical_json(data))
        with pytest.raises(InputError, match="n >= 1"):
            read(bad)


class TestSchema1Migration:
    """Schema 1 records (one `tolerance` for four meanings) read into today's claim kinds."""

    V1_ENTRIES = [
        (dict(kind="exact", value=4.4, tolerance=0.05), "ExactCount", {"abs_tolerance": 0.05}),
        (dict(kind="at_least", value=2.0, tolerance=0.1, planned_halfwidth=0.1), "AtLeastRatio",
         {"rel_delta": 0.1}),
        (dict(kind="two_sided", value=2.0, tolerance=0.5, planned_halfwidth=0.1), "TwoSidedBand",
         {"band_halfwidth": 0.5}),
        (dict(kind="released_weights", value=67.8, tolerance=0.35), "ReleasedWeights",
         {"published_rounding": 0.05, "pipeline_allowance": 0.3}),
        (dict(kind="calibrated_effect", value=None, tolerance=0.5, null_value=0.0, calibration=[],
              calibration_spread=None, planned_halfwidth=None, negative_control="off", role="gate",
              source_kind="calibration"), "CalibratedEffect", {"kept_fraction": 0.5}),
        (dict(kind="direction", value=1.0, tolerance=0.0, seed_spread=2.33, scale="proxy"), "Direction",
         {"margin": 1.0}),
    ]

    @pytest.mark.parametrize("v1,cls,fields", V1_ENTRIES)
    def test_entry(self, tmp_path, v1, cls, fields):
        entry = dict(claim="c", scale="paper", metric="m", unit="x", role="finding", source="s",
                     source_kind="primary", negative_control=None, note="", null_value=None,
                     calibration=[], calibration_spread=None, planned_halfwidth=None, seed_spread=None)
        entry.update(v1)
        data = json.loads(canonical_json(make_record().model_dump(mode="json")))
        data.update(schema_version=1, expected=[entry], results=[], metrics={})
        path = tmp_path / f"vit_flops__paper__run__{rec.data_id(data)}.json"
        path.write_text(canonical_json(data))
        rid, record = read(path)
        got = record.expected[0]
        assert type(got).__name__ == cls and rid == rec.data_id(data)
        assert {k: getattr(got, k) for k in fields} == fields
        if cls == "Direction":
            assert got.seed_spread.sd == 2.33 and got.seed_spread.df is None  # declared, no df

    @pytest.mark.parametrize("name,metric,over", [
        ("gain_finetune_over_pretrain", dict(value=1.0, lo=0.0, hi=2.0, n=1, unit="pp", samples=[1.0]), "seeds"),
        ("speedup_step_mask50", dict(value=2.0, lo=1.9, hi=2.1, n=9, unit="x", samples=[2.0] * 9), "rounds"),
        ("tokens_b16_112", dict(value=50.0, lo=50.0, hi=50.0, n=1, unit="tokens"), "exact"),
        ("content_words_syntax_vs_truncate", dict(value=3.5, lo=3.4, hi=3.6, n=1, unit="words"), "examples"),
    ])
    def test_metric_says_what_n_counts(self, name, metric, over):
        assert rec.migrate({"schema_version": 1, "metrics": {name: metric}})["metrics"][name]["over"] == over
