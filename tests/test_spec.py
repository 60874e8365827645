"""Unit tests for cliprepro.spec: suite / expected schemas and loading them with clear errors."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cliprepro.claims import AtLeastRatio
from cliprepro.errors import InputError
from cliprepro.spec import (
    ExpectedFile,
    NegativeControl,
    ScalePlan,
    Suite,
    load_expected,
    load_suite,
)

SUITE_NAME = "patch_dropout"


def valid_suite() -> dict[str, Any]:
    return {
        "suite": SUITE_NAME,
        "version": 1,
        "title": "Patch dropout speeds up training",
        "claim": "Dropping half the patches speeds up a training step.",
        "source": "FLIP, Table 1 (primary)",
        "command": "cliprepro run patch_dropout",
        "fidelity": "a tiny ViT on procedural images; same masking",
        "runner": "throughput",
        "ci_scale": "proxy",
        "scales": {
            "proxy": {"hardware": "CPU", "runtime_s": 30, "params": {"width": 64}},
            "gpu": {"hardware": "1 GPU", "runtime_s": 600, "requires": ["cuda"], "params": {}},
        },
        "negative_controls": {
            "no_dropout": {"gates": ["speedup"], "description": "dropout 0",
                           "overrides": {"patch_dropout": 0.0}},
        },
    }


def gate_entry() -> dict[str, Any]:
    return {
        "claim": "speedup", "scale": "proxy", "metric": "step_speedup", "value": 1.6, "unit": "x",
        "kind": "calibrated_effect", "kept_fraction": 0.5, "role": "gate", "source": "calibration",
        "source_kind": "calibration", "null_value": 1.0, "negative_control": "no_dropout",
        "calibration": ["a1", "a2", "a3"], "calibration_spread": 0.05, "planned_halfwidth": 0.05,
    }


def finding_entry() -> dict[str, Any]:
    return {
        "claim": "speedup", "scale": "paper", "metric": "step_speedup", "value": 2.0, "unit": "x",
        "kind": "at_least", "rel_delta": 0.1, "role": "finding", "source": "FLIP Table 1",
        "source_kind": "primary", "planned_halfwidth": 0.05,
    }


def direction_entry() -> dict[str, Any]:
    return {"claim": "mask_helps", "scale": "proxy", "metric": "gain", "kind": "direction", "margin": 0.0,
            "unit": "pp", "role": "finding", "source": "FLIP Table 1", "source_kind": "primary"}


# the fields each kind adds to the common ones (values valid at paper scale)
KIND_FIELDS = {
    "exact": {"value": 17.0, "abs_tolerance": 0.0},
    "released_weights": {"value": 67.8, "published_rounding": 0.05},
    "at_least": {"value": 2.0, "rel_delta": 0.1, "planned_halfwidth": 0.05},
    "at_most": {"value": 2.0, "rel_delta": 0.1, "planned_halfwidth": 0.05},
    "two_sided": {"value": 2.0, "band_halfwidth": 0.5, "planned_halfwidth": 0.05},
}


def kind_entry(kind: str, scale: str = "paper") -> dict[str, Any]:
    return {"claim": "c", "scale": scale, "metric": "m", "kind": kind, "unit": "x", "role": "finding",
            "source": "paper", "source_kind": "primary", **KIND_FIELDS[kind]}


def valid_expected() -> dict[str, Any]:
    return {"suite": SUITE_NAME, "entries": [gate_entry(), finding_entry()]}


def write_yaml(folder: Path, data: Any, name: str = SUITE_NAME) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def set_in(data: dict, dotted: str, value: Any) -> dict:
    """Copy of data with data[a][b]... = value; a value of DELETE removes the key."""
    data = copy.deepcopy(data)
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node = data
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


def assert_input_error(exc: InputError, path: Path, field: str, *parts: str) -> None:
    assert exc.path == str(path)
    assert exc.field == field
    assert str(exc).startswith(f"{path}: {field}: ")
    for part in parts:
        assert part in str(exc)


class TestValidFiles:
    def test_suite_loads(self, tmp_path):
        suite = load_suite(write_yaml(tmp_path, valid_suite()))
        assert isinstance(suite, Suite)
        assert suite.suite == SUITE_NAME
        assert suite.scales["proxy"].runtime_s == 30
        assert suite.scales["gpu"].requires == ["cuda"]
        assert suite.scales["proxy"].requires == []
        assert suite.gates_of("no_dropout") == ["speedup"]

    def test_suite_without_negative_controls(self, tmp_path):
        suite = load_suite(write_yaml(tmp_path, set_in(valid_suite(), "negative_controls", DELETE)))
        assert suite.negative_controls == {}

    def test_expected_loads(self, tmp_path):
        exp = load_expected(write_yaml(tmp_path, valid_expected()))
        assert isinstance(exp, ExpectedFile)
        assert [e.key() for e in exp.entries] == [("speedup", "proxy"), ("speedup", "paper")]
        assert exp.entries[1].note == "" and not hasattr(exp.entries[1], "calibration")
        assert [type(e).__name__ for e in exp.entries] == ["CalibratedEffect", "AtLeastRatio"]

    def test_same_claim_at_two_scales_is_not_a_duplicate(self, tmp_path):
        exp = load_expected(write_yaml(tmp_path, valid_expected()))
        assert len({e.claim for e in exp.entries}) == 1 and len(exp.entries) == 2

    @pytest.mark.parametrize("entry", [kind_entry("exact", "proxy"), gate_entry()])
    def test_proxy_may_be_exact_or_calibrated(self, tmp_path, entry):
        [got] = load_expected(write_yaml(tmp_path, {"suite": SUITE_NAME, "entries": [entry]})).entries
        assert (got.scale, got.kind, type(got).__name__) == (
            "proxy", entry["kind"], {"exact": "ExactCount", "calibrated_effect": "CalibratedEffect"}[entry["kind"]])

    def test_proxy_finding_may_be_a_direction(self, tmp_path):
        entry = direction_entry()
        assert load_expected(write_yaml(tmp_path, {"suite": SUITE_NAME, "entries": [entry]})).entries[0].kind == "direction"

    @pytest.mark.parametrize("field,value,where,says", [
        ("role", "gate", "entries.0.role", "'finding'"),
        ("tolerance", 0.5, "entries.0.tolerance", "unknown key; allowed:"),  # the margin says it
        ("value", 0.5, "entries.0.value", "unknown key; allowed:"),
    ])
    def test_direction_is_a_finding_with_a_margin(self, tmp_path, field, value, where, says):
        entry = set_in(direction_entry(), "negative_control", "off") if field == "role" else direction_entry()
        path = write_yaml(tmp_path, {"suite": SUITE_NAME, "entries": [set_in(entry, field, value)]})
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, where, says)
        if field != "role":
            assert "margin" in str(info.value)

    def test_uncalibrated_effect_has_neither_value_nor_ids(self, tmp_path):
        data = set_in(set_in(valid_expected(), "entries.0.value", None), "entries.0.calibration", [])
        entry = load_expected(write_yaml(tmp_path, data)).entries[0]
        assert entry.value is None and entry.calibration == []

    @pytest.mark.parametrize("fraction", [0.001, 0.5, 1.0])
    def test_calibrated_effect_kept_fraction_in_range(self, tmp_path, fraction):
        data = set_in(valid_expected(), "entries.0.kept_fraction", fraction)
        assert load_expected(write_yaml(tmp_path, data)).entries[0].kept_fraction == fraction

    def test_models_are_frozen(self, tmp_path):
        exp = load_expected(write_yaml(tmp_path, valid_expected()))
        with pytest.raises(ValidationError, match="frozen"):
            exp.entries[0].value = 3.0  # type: ignore[misc]
        assert exp.entries[0].value == 1.6


class TestSuiteErrors:
    @pytest.mark.parametrize(
        ("dotted", "value", "field", "parts"),
        [
            ("colour", "red", "colour", ("unknown key; allowed:",)),
            ("scales.proxy.gpus", 2, "scales.proxy.gpus", ("unknown key; allowed:",)),
            ("runner", "training", "runner", ("throughput", "architecture")),
            ("ci_scale", "tpu", "ci_scale", ("proxy",)),
            ("ci_scale", "paper", "(top level)", ("ci_scale 'paper' has no plan",)),
            ("scales.tpu", {"hardware": "x", "runtime_s": 1, "params": {}}, "scales.tpu.[key]",
             ("proxy", "gpu", "paper")),
            ("version", 0, "version", ("greater than or equal to 1",)),
            ("version", "one", "version", ()),
            ("scales.proxy.runtime_s", 0, "scales.proxy.runtime_s", ("greater than 0",)),
            ("scales.proxy.requires", ["tpu"], "scales.proxy.requires.0", ("cuda",)),
            ("scales.proxy.hardware", DELETE, "scales.proxy.hardware", ("required",)),
            ("scales.proxy.inherit_params", "maybe", "scales.proxy.inherit_params", ("boolean",)),
            ("title", DELETE, "title", ("required",)),
            ("negative_controls.no_dropout.gates", [], "negative_controls.no_dropout.gates",
             ("at least 1",)),
        ],
    )
    def test_bad_field(self, tmp_path, dotted, value, field, parts):
        path = write_yaml(tmp_path, set_in(valid_suite(), dotted, value))
        with pytest.raises(InputError) as info:
            load_suite(path)
        assert_input_error(info.value, path, field, *parts)

    def test_unknown_top_level_key_lists_suite_keys(self, tmp_path):
        path = write_yaml(tmp_path, set_in(valid_suite(), "colour", "red"))
        with pytest.raises(InputError) as info:
            load_suite(path)
        listed = str(info.value).split("allowed: ", 1)[1].split(", ")
        assert listed == sorted(Suite.model_fields)

    @pytest.mark.parametrize(
        ("dotted", "model"),
        [
            ("scales.proxy.gpus", ScalePlan),
            ("negative_controls.no_dropout.why", NegativeControl),
        ],
    )
    def test_unknown_nested_key_lists_the_nested_keys(self, tmp_path, dotted, model):
        path = write_yaml(tmp_path, set_in(valid_suite(), dotted, 1))
        with pytest.raises(InputError) as info:
            load_suite(path)
        assert info.value.field == dotted
        listed = str(info.value).split("allowed: ", 1)[1].split(", ")
        assert listed == sorted(model.model_fields)

    def test_several_problems_are_counted(self, tmp_path):
        data = set_in(set_in(valid_suite(), "colour", "red"), "runner", "nope")
        path = write_yaml(tmp_path, data)
        with pytest.raises(InputError, match=r"\(and 1 more problem\(s\)\)"):
            load_suite(path)

    def test_suite_name_must_equal_file_stem(self, tmp_path):
        path = write_yaml(tmp_path, valid_suite(), name="other_name")
        with pytest.raises(InputError) as info:
            load_suite(path)
        assert_input_error(info.value, path, "suite", "'other_name'")


class TestExpectedErrors:
    @pytest.mark.parametrize(
        ("dotted", "value", "field", "parts"),
        [
            ("entries.0.colour", "red", "entries.0.colour", ("unknown key; allowed:",)),
            ("entries.1.kind", "approximately", "entries.1.kind", ("unknown kind 'approximately'", "at_least",
                                                                   "calibrated_effect")),
            ("entries.1.kind", DELETE, "entries.1.kind", ("missing", "at_least")),
            # a field of another kind is an unknown key of this one, listing this kind's keys
            ("entries.1.tolerance", 0.1, "entries.1.tolerance", ("unknown key; allowed:", "rel_delta")),
            ("entries.1.kept_fraction", 0.5, "entries.1.kept_fraction", ("unknown key; allowed:",)),
            ("entries.1.planned_halfwidth", DELETE, "entries.1.planned_halfwidth", ("required",)),
            ("entries.1.role", "boss", "entries.1.role", ("gate", "finding")),
            ("entries.1.scale", "tpu", "entries.1.scale", ("proxy", "gpu", "paper")),
            ("entries.1.source_kind", "blog", "entries.1.source_kind", ("primary",)),
            ("entries.1.rel_delta", -0.1, "entries.1.rel_delta", ("greater than or equal to 0",)),
            ("entries.1.rel_delta", 1.0, "entries.1.rel_delta", ("less than 1",)),
            ("entries.1.value", "high", "entries.1.value", ()),
            ("entries.1.value", float("nan"), "entries.1.value", ("finite",)),
            ("entries.1.value", float("inf"), "entries.1.value", ("finite",)),
            ("entries.0.value", float("nan"), "entries.0.value", ("finite",)),
            ("entries.1.unit", DELETE, "entries.1.unit", ("required",)),
            ("entries.0.negative_control", DELETE, "entries.0", ("a gate needs a negative_control",)),
            ("entries.0.negative_control", "", "entries.0", ("a gate needs a negative_control",)),
            ("entries.0.calibration", ["a1", "a2"], "entries.0", (">= 3 calibration record ids",)),
            ("entries.0.calibration", ["a1"], "entries.0", (">= 3 calibration record ids",)),
            # calibration ids and a value come together (a value with no ids, or ids with no value)
            ("entries.0.calibration", [], "entries.0", ("both value and calibration ids",)),
            ("entries.0.value", None, "entries.0", ("both value and calibration ids",)),
            ("entries.1.value", None, "entries.1.value", ("valid number",)),
            ("entries.1.value", DELETE, "entries.1.value", ("required",)),
            ("entries.0.null_value", DELETE, "entries.0.null_value", ("required",)),
            ("entries.0.kept_fraction", 0.0, "entries.0.kept_fraction", ("greater than 0",)),
            ("entries.0.kept_fraction", 1.5, "entries.0.kept_fraction", ("less than or equal to 1",)),
            ("entries.0.seed_spread", {"sd": 0.0, "source": "x"}, "entries.0.seed_spread.sd", ("greater than 0",)),
            ("entries.1.source_kind", "calibration", "entries.1",
             ("source_kind calibration goes with kind calibrated_effect",)),
            ("entries", "speedup", "entries", ("list",)),
            ("entries", DELETE, "entries", ("required",)),
            ("suite", DELETE, "suite", ("required",)),
        ],
    )
    def test_bad_field(self, tmp_path, dotted, value, field, parts):
        path = write_yaml(tmp_path, set_in(valid_expected(), dotted, value))
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, field, *parts)

    @pytest.mark.parametrize("kind", ["at_least", "at_most", "two_sided", "released_weights"])
    def test_proxy_is_never_compared_to_a_paper_number(self, tmp_path, kind):
        load_expected(write_yaml(tmp_path, {"suite": SUITE_NAME, "entries": [kind_entry(kind)]}))  # paper: fine
        path = write_yaml(tmp_path, {"suite": SUITE_NAME, "entries": [kind_entry(kind, "proxy")]})
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, "entries.0", "never against a paper's number")

    def test_unknown_entry_key_lists_entry_keys(self, tmp_path):
        path = write_yaml(tmp_path, set_in(valid_expected(), "entries.1.colour", "red"))
        with pytest.raises(InputError) as info:
            load_expected(path)
        listed = str(info.value).split("allowed: ", 1)[1].split(", ")
        assert listed == sorted(AtLeastRatio.model_fields)

    def test_unknown_top_level_key_lists_file_keys(self, tmp_path):
        path = write_yaml(tmp_path, set_in(valid_expected(), "version", 2))
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, "version", "unknown key; allowed: entries, suite")

    def test_duplicate_claim_and_scale(self, tmp_path):
        data = valid_expected()
        dup = set_in(finding_entry(), "value", 3.0)
        data["entries"].append(dup)
        path = write_yaml(tmp_path, data)
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, "entries.2", "duplicate", "'speedup'", "'paper'")

    def test_suite_name_must_equal_file_stem(self, tmp_path):
        path = write_yaml(tmp_path, valid_expected(), name="patch_dropout_v2")
        with pytest.raises(InputError) as info:
            load_expected(path)
        assert_input_error(info.value, path, "suite", "'patch_dropout_v2'")


class TestFileErrors:
    @pytest.mark.parametrize("loader", [load_suite, load_expected])
    @pytest.mark.parametrize(
        "text",
        [
            "suite: [unclosed\n",
            "suite: x\n  bad: indent\n",
            "a: 1\n\tb: 2\n",
        ],
    )
    def test_invalid_yaml(self, tmp_path, loader, text):
        path = tmp_path / f"{SUITE_NAME}.yaml"
        path.write_text(text)
        with pytest.raises(InputError) as info:
            loader(path)
        assert info.value.field.startswith("line ")
        assert str(info.value).startswith(f"{path}: line ")
        assert "not valid YAML" in str(info.value)

    @pytest.mark.parametrize("loader", [load_suite, load_expected])
    @pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n", "null\n"])
    def test_top_level_must_be_a_mapping(self, tmp_path, loader, text):
        path = tmp_path / f"{SUITE_NAME}.yaml"
        path.write_text(text)
        with pytest.raises(InputError) as info:
            loader(path)
        assert_input_error(info.value, path, "(top level)", "must be a mapping")

    @pytest.mark.parametrize("loader", [load_suite, load_expected])
    @pytest.mark.parametrize("data", [b"\xff\xfesuite: x\n", b"suite: caf\xe9\n"])
    def test_not_utf8_is_input_error(self, tmp_path, loader, data):
        path = tmp_path / f"{SUITE_NAME}.yaml"
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            loader(path)
        assert_input_error(info.value, path, "(file)", "not UTF-8")

    @pytest.mark.parametrize("loader", [load_suite, load_expected])
    def test_missing_file(self, tmp_path, loader):
        path = tmp_path / "absent.yaml"
        with pytest.raises(InputError) as info:
            loader(path)
        assert_input_error(info.value, path, "(file)", "cannot read")


class TestParamsFor:
    """Suite params are written once: each scale, then a control, overrides whole keys."""

    @staticmethod
    def suite(**scale_over) -> Suite:
        data = valid_suite()
        data["params"] = {"width": 64, "rounds": 9, "arms": ["a", "b"]}
        data["scales"]["gpu"]["params"] = {"rounds": 15}
        data["scales"]["gpu"].update(scale_over)
        data["negative_controls"]["no_dropout"]["overrides"] = {"arms": ["a"]}
        return Suite.model_validate(data)

    @pytest.mark.parametrize("scale,control,expected", [
        ("proxy", None, {"width": 64, "rounds": 9, "arms": ["a", "b"]}),  # proxy's own {"width": 64}
        ("gpu", None, {"width": 64, "rounds": 15, "arms": ["a", "b"]}),
        ("gpu", "no_dropout", {"width": 64, "rounds": 15, "arms": ["a"]}),
    ])
    def test_merge(self, scale, control, expected):
        assert self.suite().params_for(scale, control) == expected

    def test_a_scale_may_stand_alone(self):
        assert self.suite(inherit_params=False).params_for("gpu") == {"rounds": 15}
