"""Records say what happened: provenance taken before a run, load during it, an unknown commit
where there is no git, and where a run's record goes."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from cliprepro import provenance
from cliprepro.layout import Layout
from cliprepro.provenance import COMMIT_ENV, LoadSampler, git_state
from cliprepro.runflow import out_folder


class TestGitState:
    def test_a_tree_without_git_is_never_clean(self, tmp_path, monkeypatch):
        monkeypatch.delenv(COMMIT_ENV, raising=False)
        state = git_state(tmp_path)
        assert state["commit"] is None and state["dirty"] is None and "unknown" in state["source"]

    def test_commit_given_by_the_environment(self, tmp_path, monkeypatch):
        monkeypatch.setenv(COMMIT_ENV, "0ea14ed")
        assert git_state(tmp_path) == {"commit": "0ea14ed", "dirty": None, "source": f"${COMMIT_ENV}"}

    def test_a_folder_inside_another_repository_is_not_that_repository(self, tmp_path, monkeypatch):
        """A copy placed under some other checkout must not take that checkout's commit."""
        monkeypatch.delenv(COMMIT_ENV, raising=False)
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        (tmp_path / "copy").mkdir()
        assert git_state(tmp_path / "copy")["commit"] is None

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
    def test_a_clean_and_a_dirty_checkout(self, tmp_path):
        run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
        run("init", "-q")
        (tmp_path / "f").write_text("1")
        run("add", "f")
        run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
        assert git_state(tmp_path)["dirty"] is False and git_state(tmp_path)["source"] == "git"
        (tmp_path / "f").write_text("2")
        assert git_state(tmp_path)["dirty"] is True

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
    @pytest.mark.parametrize("path,dirty", [("results/r.json", False), ("expected/e.yaml", False),
                                            ("reports/README.md", False), ("cliprepro/x.py", True),
                                            ("results_extra.py", True)])
    def test_records_expected_values_and_reports_are_not_code(self, tmp_path, path, dirty):
        """Running writes results/, expected/ and reports/: a calibration there is still clean."""
        run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
        run("init", "-q")
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1")
        run("add", path)
        run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
        (tmp_path / path).write_text("2")
        assert git_state(tmp_path)["dirty"] is dirty


class TestLoadSampler:
    def test_samples_during_and_at_the_end(self):
        with LoadSampler(every_s=0.05) as sampler:
            time.sleep(0.3)
        summary = sampler.summary()
        assert summary["n"] >= 3 and summary["min"] <= summary["mean"] <= summary["max"]

    def test_a_short_run_has_one_sample(self):
        with LoadSampler(every_s=60) as sampler:
            pass
        assert sampler.summary()["n"] == 1


class TestCollectedBeforeTheRun:
    def test_start_time_and_load_are_taken_before_the_runner(self, monkeypatch, tmp_path):
        """execute() collects provenance, then runs: the start time precedes the runner's work."""
        from cliprepro import runflow

        calls = []
        monkeypatch.setattr(runflow, "collect", lambda root, device=None: calls.append("collect") or
                            {"started_utc": "t0", "load_avg_at_start": [0.0, 0.0, 0.0]})

        class Runner:
            @staticmethod
            def run(params, scale, build_dir):
                calls.append("run")
                raise RuntimeError("boom")

        monkeypatch.setattr(runflow, "runner_params", lambda *a, **k: (Runner, _Params()))
        outcome = runflow.execute(Layout.find(str(Path(__file__).resolve().parent.parent)), "flip_speedup",
                                  scale="proxy", out=tmp_path)
        assert calls == ["collect", "run"]
        assert outcome.record.status == "error" and outcome.record.provenance["started_utc"] == "t0"
        assert "load_avg_during" in outcome.record.provenance


class _Params:
    def model_dump(self, mode="json"):
        return {}


class TestOutFolder:
    LAYOUT = Layout(Path("/repo"))

    @pytest.mark.parametrize("scale,record_type,status,nothing,where", [
        ("proxy", "run", "completed", False, "build/results"),
        ("gpu", "run", "completed", False, "results"),
        ("paper", "run", "completed", False, "results"),
        ("paper", "run", "completed", True, "build/results"),  # every claim skipped: nothing measured
        ("gpu", "run", "skipped", False, "build/results"),
        ("gpu", "negative_control", "completed", False, "build/results"),
        ("proxy", "calibration", "completed", False, "results/calibration"),
        ("proxy", "calibration", "error", False, "build/results"),
    ])
    def test_table(self, scale, record_type, status, nothing, where):
        got = out_folder(self.LAYOUT, scale, record_type, None, status, nothing)
        assert got == Path("/repo") / where


def test_collect_has_no_device_until_the_runner_says(tmp_path):
    assert provenance.collect(tmp_path)["device"] == {}
