"""compare: configuration, environment and claims side by side, and a paired test that sees a
change in per-example predictions; rerun: says what differs and plans the stored configuration."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from cliprepro import record as rec
from cliprepro.compare import compare_text, differences, paired_stage_tests
from cliprepro import predictions
from tests.conftest import REPO


def _release() -> tuple[str, rec.Record]:
    return rec.read(sorted((REPO / "results").glob("clipa_l16__proxy__run__*.json"))[-1])


def _worse(record: rec.Record, flipped: int) -> rec.Record:
    """The same record with `flipped` correct examples of every finetune point made wrong."""
    data = copy.deepcopy(record.model_dump())
    for point in data["points"]:
        if point.get("stage") == "finetune":
            correct = predictions.unpack(point["predictions"]).copy()
            correct[np.flatnonzero(correct)[:flipped]] = 0
            point["predictions"] = predictions.pack(correct)
    data["config"]["params"]["seeds"] = [7, 8, 9]
    data["provenance"]["device"]["device_class"] = "cuda: NVIDIA H200"
    return rec.Record.model_validate(data)


class TestCompare:
    def test_a_record_against_itself_differs_in_nothing(self):
        rid, r = _release()
        text = compare_text(rid, r, rid, r)
        assert text.count("identical") == 2
        assert all(row[1] == 0.0 and row[4] == "1" for row in paired_stage_tests(r, r))

    def test_config_environment_and_paired_change_are_shown(self):
        rid, r = _release()
        b = _worse(r, flipped=40)
        assert ("params.seeds", r.config["params"]["seeds"], [7, 8, 9]) in differences(r.config, b.config)
        text = compare_text(rid, r, "b", b)
        assert "cuda: NVIDIA H200" in text
        rows = {row[0]: row for row in paired_stage_tests(r, b)}
        assert rows["pretrain"][1] == 0.0
        assert rows["finetune"][1] < 0 and float(rows["finetune"][4]) < 0.05  # 40 of ~2000 examples, every seed

    def test_predictions_that_do_not_decode_are_not_paired(self):
        rid, r = _release()
        data = copy.deepcopy(r.model_dump())
        for point in data["points"]:
            if point.get("stage") == "finetune":
                point["predictions"]["zlib_b64"] = "not base64!"
        rows = {row[0]: row for row in paired_stage_tests(r, rec.Record.model_validate(data))}
        assert rows["pretrain"][1] == 0.0
        assert "do not decode" in rows["finetune"][-1] and rows["finetune"][1] == "—"

    def test_records_of_two_suites_are_refused(self):
        a = sorted((REPO / "results").glob("clipa_l16__proxy__run__*.json"))[-1]
        b = sorted((REPO / "results").glob("flip_flops__paper__run__*.json"))[-1]
        out = subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(REPO), "compare", str(a), str(b)],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2 and "two records of one suite" in out.stderr and "Traceback" not in out.stderr


class TestRerun:
    def test_dry_run_says_what_differs_and_plans_the_stored_seeds(self, tmp_path):
        rid, r = _release()
        data = json.loads(r.model_dump_json())
        data["config"]["params"]["seeds"] = [11, 12, 13]
        data["provenance"]["python"] = "3.0.0"
        _id, path = rec.write(rec.Record.model_validate(data), tmp_path)
        out = subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(REPO), "rerun", str(path), "--dry-run"],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, out.stderr
        assert "python" in out.stdout and "3.0.0" in out.stdout  # the environment difference, before running
        assert "seeds [11, 12, 13]" in out.stdout  # the stored configuration, not the suite's

    @pytest.mark.parametrize("change, field, words", [
        (lambda d: d.update(record_type="calibration"), "record_type", "cliprepro calibrate clipa_l16"),
        (lambda d: d["config"].update(params="seeds 0"), "config.params", "nothing to re-run with"),
        (lambda d: d["config"].pop("params"), "config.params", "nothing to re-run with"),
        (lambda d: d["config"]["params"].update(stages="all"), "config.params.stages", "older version"),
    ], ids=["calibration", "params-string", "no-params", "params-invalid"])
    def test_what_cannot_be_rerun_is_refused_naming_the_record(self, tmp_path, capsys, change, field, words):
        from cliprepro.cli import main  # in process: refused before anything is planned or imported

        _, r = _release()
        data = json.loads(r.model_dump_json())
        change(data)
        _id, path = rec.write(rec.Record.model_validate(data), tmp_path)
        assert main(["--root", str(REPO), "rerun", str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: {field}: ") and words in err, err
