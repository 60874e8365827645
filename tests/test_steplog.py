"""Where a training stage's time goes: data wait vs step (runners.upstream.steplog), and the
training rates a record carries (runners.train.rate_metrics)."""
from __future__ import annotations

import json

import pytest

from runners.upstream import steplog
from runners.upstream.steplog import StepLog, TimedLoader, summary


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowLoader:
    """Each batch takes `wait_s` of the fake clock to arrive; num_batches passes through."""

    def __init__(self, clock: FakeClock, batches: int, batch: int, first_s: float, wait_s: float):
        self.clock, self.num_batches, self.batch = clock, batches, batch
        self.first_s, self.wait_s = first_s, wait_s

    def __iter__(self):
        for i in range(self.num_batches):
            self.clock.now += self.first_s if i == 0 else self.wait_s
            yield [list(range(self.batch)), None]


class TestTimedLoader:
    @pytest.mark.parametrize("first_s,wait_s,step_s", [(2.0, 0.0, 0.5), (0.0, 0.1, 0.3), (1.0, 0.25, 0.25)])
    def test_splits_wall_time_into_data_wait_and_step(self, tmp_path, monkeypatch, first_s, wait_s, step_s):
        clock = FakeClock()
        monkeypatch.setattr(steplog.time, "perf_counter", clock)
        log = StepLog(tmp_path / "log.json")
        loader = TimedLoader(SlowLoader(clock, 4, 8, first_s, wait_s), log)
        assert loader.num_batches == 4  # open_clip_train reads it through the wrapper
        for _batch in loader:
            clock.now += step_s  # the training step
        (epoch,) = json.loads((tmp_path / "log.json").read_text())["epochs"]
        assert epoch == {"steps": 4, "samples": 32, "first_wait_s": first_s, "wait_s": pytest.approx(3 * wait_s),
                         "step_s": pytest.approx(4 * step_s)}
        rates = summary({"epochs": [epoch]})
        wall = first_s + 3 * wait_s + 4 * step_s
        assert rates["train_samples_per_s"] == pytest.approx(32 / wall)
        assert rates["step_samples_per_s"] == pytest.approx(32 / (4 * step_s))
        assert rates["data_wait_fraction"] == pytest.approx((first_s + 3 * wait_s) / wall)

    def test_a_resumed_run_appends_its_epochs_and_the_progress_counts_on(self, tmp_path):
        path = tmp_path / "log.json"
        path.write_text(json.dumps({"epochs": [{"steps": 5, "samples": 40, "first_wait_s": 0.0,
                                                "wait_s": 0.0, "step_s": 1.0}]}))
        log = StepLog(path)
        for _ in TimedLoader(SlowLoader(FakeClock(), 3, 8, 0.0, 0.0), log):
            pass
        assert [e["steps"] for e in json.loads(path.read_text())["epochs"]] == [5, 3]
        assert json.loads(steplog.progress_path(path).read_text()) == {"steps": 8}


class TestSummary:
    def test_the_bare_step_ratio(self):
        data = {"epochs": [{"steps": 2, "samples": 100, "first_wait_s": 0.5, "wait_s": 0.0, "step_s": 0.5}],
                "bare_step": {"batch_size": 50, "s_per_step": 0.2, "samples_per_s": 250.0}}
        rates = summary(data)
        assert rates["train_samples_per_s"] == 100.0 and rates["train_vs_bare_step"] == pytest.approx(0.4)

    def test_nothing_timed_gives_nothing(self):
        assert summary({"epochs": []}) == {}


class TestRateMetrics:
    def test_speeds_carry_the_worst_seed_wait_and_the_wait_is_a_percentage(self):
        from runners.train import rate_metrics

        points = [{"stage": "s", "seed": 0, "train_samples_per_s": 90.0, "step_samples_per_s": 100.0,
                   "data_wait_fraction": 0.1, "bare_step_samples_per_s": 110.0, "train_vs_bare_step": 0.82},
                  {"stage": "s", "seed": 1, "train_samples_per_s": 80.0, "step_samples_per_s": 100.0,
                   "data_wait_fraction": 0.2},
                  {"stage": "t", "seed": 0}]  # a stage with epochs 0: nothing timed
        m = rate_metrics(points)
        assert set(m) == {"train_samples_per_s_s", "step_samples_per_s_s", "data_wait_pct_s", "train_vs_bare_step_s"}
        assert m["train_samples_per_s_s"].data_wait_fraction == 0.2
        assert m["data_wait_pct_s"].data_wait_fraction is None and m["data_wait_pct_s"].samples == [10.0, 20.0]
        assert m["train_vs_bare_step_s"].value == 0.82


class TestTrimOnResume:
    """A resumed stage keeps the epochs its checkpoint holds; the trimmed log replaces the old one
    whole, so a kill in the middle of writing it leaves the old log, never half of one."""

    def _log(self, tmp_path):
        path = tmp_path / "step_log.json"
        path.write_text(json.dumps({"epochs": [{"steps": i} for i in range(3)], "bare_step": {"s_per_step": 0.1}}))
        return path

    def test_keeps_the_checkpointed_epochs(self, tmp_path):
        from runners.training.stage import _trim_step_log

        path = self._log(tmp_path)
        _trim_step_log(path, 2)
        assert json.loads(path.read_text())["epochs"] == [{"steps": 0}, {"steps": 1}]

    def test_a_kill_mid_write_leaves_the_old_log(self, tmp_path, monkeypatch):
        from pathlib import Path

        from runners.training.stage import _trim_step_log

        path = self._log(tmp_path)
        before = path.read_text()

        def half_then_killed(self, text, *a, **kw):
            with open(self, "w") as fh:
                fh.write(text[: len(text) // 2])
            raise KeyboardInterrupt

        monkeypatch.setattr(Path, "write_text", half_then_killed)
        with pytest.raises(KeyboardInterrupt):
            _trim_step_log(path, 1)
        monkeypatch.undo()
        assert path.read_text() == before
