"""The runtime guard: a run over 1.5x its declared runtime is an error, scaled by how much slower
this machine's pace is than the reference; and `run all` ends by saying what made it exit 1."""
from __future__ import annotations

from pathlib import Path

import pytest

from cliprepro import cli, runflow
from cliprepro.runflow import REFERENCE_PACE_MS
from cliprepro.layout import Layout
from runners.schema.output import Output

ROOT = Path(__file__).resolve().parent.parent


def _never() -> float:
    raise AssertionError("the pace is measured only for a run over the plain limit")


class TestJudgeRuntime:
    @pytest.mark.parametrize("wall_s,pace_factor,error", [
        (150, None, False),  # at the limit: the pace is never measured
        (151, 1.0, True),  # reference pace: the plain 1.5x limit
        (151, 0.5, True),  # a faster machine never widens (nor tightens) the limit
        (290, 2.0, False),  # a machine at half the pace gets twice the limit
        (310, 2.0, True),  # ... and no more: a suite that grew is still an error
    ])
    def test_table(self, wall_s, pace_factor, error):
        pace = _never if pace_factor is None else (lambda: pace_factor * REFERENCE_PACE_MS)
        message, timings = runflow.judge_runtime(wall_s, 100, "scales.proxy", pace)
        assert bool(message) is error and timings["wall_s"] == wall_s
        if error:
            assert "runtime_s 100 of scales.proxy" in message and "pace" in message
        assert timings["runtime_limit_s"] == pytest.approx(150 * max(1.0, pace_factor or 1.0))

    def test_a_gpu_scale_keeps_the_plain_limit(self):
        """A CPU's pace says nothing about a GPU run: no probe, 1.5x."""
        message, timings = runflow.judge_runtime(151, 100, "scales.gpu", None)
        assert "runtime_s 100 of scales.gpu" in message and "pace_ms" not in timings

    def test_a_probe_that_crashes_leaves_the_plain_limit_and_says_so(self):
        def broken() -> float:
            raise RuntimeError("no torch here")
        message, timings = runflow.judge_runtime(151, 100, "scales.proxy", broken)
        assert "could not be measured: RuntimeError: no torch here" in message
        assert runflow.judge_runtime(149, 100, "scales.proxy", broken)[0] == ""


class _Params:
    def model_dump(self, mode="json"):
        return {}


class TestExecute:
    """execute() judges the wall time it measured: a clock that jumps past the declared runtime."""

    @pytest.fixture
    def slow_run(self, monkeypatch, tmp_path):
        class Clock:
            now = 0.0

            @classmethod
            def time(cls):
                cls.now += 1000.0  # flip_speedup's proxy runtime_s is 75: every run overruns
                return cls.now

        remeasured = [0.0]

        class Runner:
            @staticmethod
            def run(params, scale, build_dir):
                return Output(remeasured_s=remeasured[0])

        monkeypatch.setattr(runflow, "time", Clock)
        monkeypatch.setattr(runflow, "runner_params", lambda *a, **k: (Runner, _Params()))
        monkeypatch.setattr(runflow, "explain_misses", lambda runner, params, entries, results, build: results)

        def run(control=None, remeasured_s=0.0):
            remeasured[0] = remeasured_s
            return runflow.execute(Layout.find(str(ROOT)), "flip_speedup", scale="proxy", out=tmp_path,
                                   control=control)
        return run

    def test_an_overrun_on_the_reference_machine_is_an_error(self, slow_run, monkeypatch):
        monkeypatch.setattr(runflow, "machine_pace_ms", lambda: REFERENCE_PACE_MS)
        record = slow_run().record
        assert record.status == "error" and "over 1.5x the declared runtime_s" in record.message
        assert record.timings["pace_ms"] == REFERENCE_PACE_MS

    def test_the_same_wall_time_on_a_much_slower_machine_is_not(self, slow_run, monkeypatch):
        monkeypatch.setattr(runflow, "machine_pace_ms", lambda: 100 * REFERENCE_PACE_MS)
        record = slow_run().record
        assert record.status == "completed" and record.timings["runtime_limit_s"] > record.timings["wall_s"]

    def test_sweeps_measured_again_are_the_machines_time_not_the_suites(self, slow_run, monkeypatch):
        """A timed sweep measured again because something else took the device (runners/timing)
        is left out of the judged time; the record keeps both."""
        monkeypatch.setattr(runflow, "machine_pace_ms", lambda: REFERENCE_PACE_MS)
        record = slow_run(remeasured_s=950.0).record
        assert record.status == "completed", record.message
        assert (record.timings["wall_s"], record.timings["remeasured_s"]) == (1000.0, 950.0)
        over = slow_run(remeasured_s=800.0).record  # 200 s judged: still over 112.5
        assert over.status == "error" and "after leaving out 800 s of timed sweeps measured again" in over.message

    def test_a_negative_control_is_not_timed_against_the_scale(self, slow_run, monkeypatch):
        """A control's params differ from the scale's, so its runtime is not the declared one."""
        monkeypatch.setattr(runflow, "machine_pace_ms", _never)
        record = slow_run(control="patch_drop_0").record
        assert record.status == "completed" and "runtime_limit_s" not in record.timings


class TestWhyFailed:
    """The last lines of `run all` name each result that made the exit status 1."""

    @staticmethod
    def _outcome(status="completed", message="", verdicts=(("gate", "reproduced"),), control=None):
        from cliprepro import record as rec

        results = [rec.ClaimResult(claim=f"c{i}", scale="proxy", role=role, metric="m", verdict=verdict,
                                   reason=f"because {i}") for i, (role, verdict) in enumerate(verdicts)]
        record = rec.Record(schema_version=2, record_type="negative_control" if control else "run",
                            suite="s", suite_version=1, scale="proxy", negative_control=control,
                            status=status, message=message, results=results, provenance={}, expected=[], config={})
        return runflow.Outcome("id", None, record)

    @pytest.mark.parametrize("kwargs,lines", [
        ({}, []),
        ({"status": "error", "message": "ran 900 s, over 1.5x\ntraceback"}, ["s: error: ran 900 s, over 1.5x"]),
        ({"verdicts": (("gate", "inconclusive"), ("finding", "inconclusive"))},
         ["s: gate c0 inconclusive: because 0"]),
        ({"verdicts": (("finding", "error"),)}, ["s: finding c0 error: because 0"]),
        ({"verdicts": (("gate", "skipped"),)}, []),  # said by the "N gates skipped" line
        ({"verdicts": (("gate", "reproduced"),), "control": "off"},
         ["s: control off: c0 reproduced (a control must fail)"]),
        ({"verdicts": (("gate", "not_reproduced"),), "control": "off"}, []),  # a control that fails passes
        ({"status": "error", "message": "runner crashed: boom", "verdicts": (("gate", "error"),), "control": "off"},
         ["s: error: runner crashed: boom"]),
    ])
    def test_table(self, kwargs, lines):
        assert cli._why_failed(self._outcome(**kwargs)) == lines


class TestPace:
    def test_is_a_measured_step_time_and_leaves_the_thread_count(self):
        import torch

        from runners.timing.pace import pace_ms

        threads = torch.get_num_threads()
        torch.set_num_threads(2)  # not 1, which the probe sets: restoring it is then seen
        try:
            torch.manual_seed(5)
            before = torch.random.get_rng_state()
            assert 0.1 < pace_ms(rounds=3, min_block_s=0.02) < 10_000
            assert torch.get_num_threads() == 2
            assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random state untouched
        finally:
            torch.set_num_threads(threads)
