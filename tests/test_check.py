"""cliprepro check: one defect per row, each naming what is wrong; the committed release-run record
it starts from passes."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from cliprepro import record as rec
from cliprepro.check import record_problems
from cliprepro.layout import Layout
from tests.conftest import REPO

LAYOUT = Layout.find(str(REPO))
SUITES = {n: LAYOUT.load(n)[0] for n in LAYOUT.suite_names()}
EXPECTED = {n: LAYOUT.load(n)[1] for n in LAYOUT.suite_names()}


def _release_record(suite: str) -> dict:
    paths = sorted(LAYOUT.results.glob(f"{suite}__proxy__run__*.json"))
    assert paths, f"no committed proxy run record of {suite} (a release run's records live in results/)"
    return json.loads(paths[-1].read_text())


def _problems(data: dict, **kw) -> list[str]:
    return record_problems(rec.Record.model_validate(rec.migrate(data)), SUITES, EXPECTED, **kw)


def _set(data: dict, path: str, value) -> dict:
    out = copy.deepcopy(data)
    *head, last = path.split(".")
    node = out
    for key in head:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


DELETE = object()
DEFECTS = [  # (field path, new value, words the problem must contain)
    ("suite", "no_such_suite", "not in suites/"),
    ("suite_version", 99, "suite_version 99"),
    ("status", "error", "status error"),
    ("provenance.git.dirty", True, "dirty"),
    ("provenance.git.commit", None, "commit is unknown"),
    ("provenance.packages", {}, "full freeze"),
    ("provenance.device.device_class", DELETE, "device_class is missing"),
    ("provenance.started_utc", DELETE, "started_utc"),
    ("inputs.training_path", "0000000000000000", "training path"),
    ("inputs.data", "proxy procedural data 000000000000", "proxy data"),
    ("points.0.predictions", DELETE, "predictions missing"),
    ("points.0.predictions.sha256", "0000000000000000", "do not match their sha256"),
    ("points.0.acc1_mean", 99.5, "its predictions give"),
    ("points.0.acc1_mean", "high", "must be a number"),
    ("points.0.predictions.zlib_b64", "not base64!", "not compressed base64"),
    ("points.0.predictions.zlib_b64", "aGVsbG8=", "not compressed base64"),  # base64, not zlib
    ("points.0.predictions.zlib_b64", 17, "not compressed base64"),
    ("expected.0.source", "edited since", "older expected entry (stale)"),
    ("config.params.stages.0.samples_per_epoch", 8192, "no longer validate"),  # an older runner's params
    ("config.params.seeds", [1_000_000], "calibration seeds"),  # a check training a calibration's models
]


class TestRecordProblems:
    def test_the_release_record_can_count(self):
        assert _problems(_release_record("clipa_l16")) == []

    @pytest.mark.parametrize("path,value,words", DEFECTS, ids=[d[0] for d in DEFECTS])
    def test_one_defect_one_problem(self, path, value, words):
        problems = _problems(_set(_release_record("clipa_l16"), path, value))
        assert any(words in p for p in problems), problems

    def test_a_stage_mean_that_its_predictions_do_not_give(self):
        data = _release_record("clipa_l16")
        m = data["metrics"]["acc1_pretrain_mean"]
        data = _set(data, "metrics.acc1_pretrain_mean.value", m["value"] + 1.0)
        assert any("metrics.acc1_pretrain_mean" in p for p in _problems(data))

    def test_stale_is_no_problem_for_the_report(self):
        data = _set(_release_record("clipa_l16"), "expected.0.source", "edited since")
        assert _problems(data, stale_ok=True) == []


class TestCheckCommand:
    def _run(self, *paths):
        return subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(REPO), "check", *map(str, paths)],
                              capture_output=True, text=True, cwd=REPO)

    def test_exit_status_ok_rejected_unreadable(self, tmp_path):
        good = sorted(LAYOUT.results.glob("clipa_l16__proxy__run__*.json"))[-1]
        assert self._run(good).returncode == 0
        _rid, bad = rec.write(rec.Record.model_validate(_set(_release_record("clipa_l16"), "provenance.git.dirty", True)),
                              tmp_path)
        out = self._run(bad)
        assert out.returncode == 1 and "REJECTED" in out.stdout and "dirty" in out.stdout
        edited = tmp_path / good.name
        edited.write_text(good.read_text().replace('"status": "completed"', '"status": "error"', 1))
        out = self._run(edited)
        assert out.returncode == 2 and "does not match the file name" in out.stderr and "Traceback" not in out.stderr


class TestFourBadRecords:
    """A results tree with a tampered, an incomplete, a wrong-version and a dirty-tree record: the
    leaderboard lists the four as rejected with their reasons and still has a row for every claim;
    `cliprepro check` exits non-zero on each and 0 on a good record."""

    def test_report_and_check(self, root_copy):
        import shutil

        good_path = sorted(LAYOUT.results.glob("clipa_l16__proxy__run__*.json"))[-1]
        good = _release_record("clipa_l16")
        bad = {}
        for what, path, value in (("incomplete", "status", "error"), ("wrong-version", "suite_version", 99),
                                  ("dirty", "provenance.git.dirty", True)):
            rid, written = rec.write(rec.Record.model_validate(_set(good, path, value)), root_copy / "results")
            bad[what] = (rid, written)
        tampered = root_copy / "results" / good_path.name
        data = json.loads(good_path.read_text())
        data["results"][0]["value"] += 1.0
        tampered.write_text(json.dumps(data))
        bad["tampered"] = (good_path.name, tampered)
        subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(root_copy), "report"], check=True,
                       capture_output=True, cwd=REPO)
        board = (root_copy / "reports" / "README.md").read_text()
        rejected = board.split("## Rejected records")[1]
        for what, words in (("incomplete", "status error"), ("wrong-version", "suite_version 99"),
                            ("dirty", "dirty is not false"), ("tampered", "does not match the file name")):
            line = next((x for x in rejected.splitlines() if bad[what][0] in x), "")
            assert words in line, (what, line)
        rows = json.loads((root_copy / "reports" / "leaderboard.json").read_text())["rows"]
        assert {(r["suite"], r["claim"], r["scale"]) for r in rows} == {
            (n, *e.key()) for n, f in EXPECTED.items() for e in f.entries}
        scratch = root_copy / "elsewhere"
        scratch.mkdir()
        shutil.copy(good_path, scratch / good_path.name)
        codes = {what: subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(REPO), "check", str(p)],
                                      capture_output=True, cwd=REPO).returncode for what, (_, p) in bad.items()}
        assert codes == {"incomplete": 1, "wrong-version": 1, "dirty": 1, "tampered": 2}
        assert subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(REPO), "check",
                               str(scratch / good_path.name)], capture_output=True, cwd=REPO).returncode == 0
