"""runners.training.stage: trainer processes, several at once, each stage after its init stage."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from runners.schema.train_params import Stage, TrainParams
from runners.training import schedule as sch
from runners.training import stage as st
from runners.training.proxydata import DataSpec
from runners.training.sources import proxy_at

SPEC = DataSpec(seed=0, image_px=32, train_samples=256, eval_samples=10, shard_samples=128)


def _params() -> TrainParams:
    s = dict(model="ViT-Tiny96-P8", batch_size=64, lr=1e-3)
    return TrainParams(seeds=[0, 1, 2], data=SPEC.__dict__, stages=[
        Stage(name="pre", epochs=2, **s), Stage(name="ft", epochs=1, init="previous", **s),
        Stage(name="ctl", epochs=0, init="pre", **s)])


def _fake_trainers(monkeypatch, run_stage) -> None:
    """Two trainer slots, `run_stage` for the trainer, an evaluator that writes empty scores."""
    def fake_in_process(target, args, log, env, poll=None):
        args[-1].write_text('{"scores": {}, "correct": {}}')
        return 0

    monkeypatch.setattr(sch, "run_stage", run_stage)
    monkeypatch.setattr(st, "in_process", fake_in_process)
    monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "2")


class TestTrainAll:
    def test_stages_wait_for_their_init_and_run_two_at_once(self, tmp_path, monkeypatch):
        events: list[tuple[str, str, int, float]] = []
        running, peak, lock = [0], [0], threading.Lock()

        def fake_run_stage(params, stage, data, logs, seed, init, bare_step_s=0.0, extra_argv=None, env=None):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                events.append(("start", stage.name, seed, time.monotonic()))
            if stage.name == "ft":
                assert init == tmp_path / f"pre-{seed}.pt", "a stage starts from its init stage's checkpoint"
                assert bare_step_s == (0.5 if seed == 0 else 0.0)
                assert env == {"OMP_NUM_THREADS": str(st.trainer_jobs()[1])}
            time.sleep(0.05)
            with lock:
                running[0] -= 1
                events.append(("end", stage.name, seed, time.monotonic()))
            return tmp_path / f"{stage.name}-{seed}.pt", True

        _fake_trainers(monkeypatch, fake_run_stage)
        out = sch.train_all(_params(), proxy_at(SPEC, tmp_path / "data", []), tmp_path / "cache", 0.5, None, "k")
        assert set(out) == {(s, seed) for s in ("pre", "ft", "ctl") for seed in (0, 1, 2)}
        assert peak[0] == 2
        end_pre = {seed: t for kind, name, seed, t in events if kind == "end" and name == "pre"}
        for kind, name, seed, t in events:
            if kind == "start" and name == "ft":
                assert t >= end_pre[seed]
        assert out[("ctl", 1)].checkpoint == tmp_path / "pre-1.pt" and out[("ctl", 1)].trained is None
        assert out[("ft", 2)].trained is True

    def test_a_failed_stage_fails_the_run(self, tmp_path, monkeypatch):
        def boom(*a, **k):
            raise RuntimeError("stage pre (seed 0) failed with exit 1: boom")

        monkeypatch.setattr(sch, "run_stage", boom)
        with pytest.raises(RuntimeError, match="boom"):
            sch.train_all(_params(), proxy_at(SPEC, tmp_path, []), tmp_path / "cache", 0.0, None, "k")

    @pytest.mark.parametrize("steps_written,ok", [(4, True), (3, False)])
    def test_an_exit_code_after_a_whole_stage_is_said_and_the_stage_kept(self, tmp_path, monkeypatch, capsys,
                                                                          steps_written, ok):
        params = _params()
        stage = params.stages[0]  # pre: 2 epochs of 256 samples at batch 64 = 8 steps planned
        logs = tmp_path / "logs"

        def fake_in_process(target, args, log, env, poll=None):
            ckpts = logs / st.STAGE_DIR / "checkpoints"
            ckpts.mkdir(parents=True)
            (ckpts / f"epoch_{stage.epochs}.pt").write_bytes(b"whole")
            log.write_text("trained\n")
            st.steplog.progress_path(logs / st.STEP_LOG).write_text(f'{{"steps": {2 * steps_written}}}')
            return 255

        monkeypatch.setattr(st, "in_process", fake_in_process)
        if ok:
            ckpt, trained = st.run_stage(params, stage, proxy_at(SPEC, tmp_path / "data", []), logs, 0, None)
            assert trained and ckpt.name == "epoch_2.pt" and "exited with 255" in capsys.readouterr().err
        else:
            with pytest.raises(RuntimeError, match="failed with exit 255"):
                st.run_stage(params, stage, proxy_at(SPEC, tmp_path / "data", []), logs, 0, None)

    @pytest.mark.parametrize("code,writes,ok", [(0, True, True), (255, True, True), (255, False, False),
                                                (1, False, False), (0, False, False)])
    def test_an_evaluation_is_judged_by_its_scores_and_its_exit_code_said(self, tmp_path, monkeypatch, capsys,
                                                                         code, writes, ok):
        params = _params()
        out = tmp_path / "stage" / "eval-k.json"

        def fake_in_process(target, args, log, env, poll=None):
            log.write_text("")
            if writes:
                out.write_text('{"scores": {"acc1_mean": 50.0}}')
            return code

        monkeypatch.setattr(st, "in_process", fake_in_process)
        if ok:
            got = st.evaluate_once(None, params, params.stages[0], tmp_path / "c.pt", None, out, "seed 0")
            assert got == {"scores": {"acc1_mean": 50.0}}
            assert ("exited with 255" in capsys.readouterr().err) == (code == 255)
        else:
            with pytest.raises(RuntimeError, match=f"failed with exit {code}, no scores written: .its log is empty"):
                st.evaluate_once(None, params, params.stages[0], tmp_path / "c.pt", None, out, "seed 0")

    @pytest.mark.parametrize("cores,gpu,env,want", [(2, False, None, (2, 1)), (16, False, None, (2, 8)),
                                                    (1, False, None, (1, 1)), (2, False, "1", (1, 2)),
                                                    (16, True, None, (1, 16)), (16, True, "2", (2, 8))])
    def test_jobs_and_threads(self, monkeypatch, cores, gpu, env, want):
        import torch

        monkeypatch.setattr(st.os, "cpu_count", lambda: cores)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
        if env is None:
            monkeypatch.delenv("CLIPREPRO_TRAIN_JOBS", raising=False)
        else:
            monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", env)
        assert st.trainer_jobs() == want


class TestSharedPool:
    """runners.training.schedule: one pool for every run in the process, jobs started when their
    init is trained, one training of a stage two runs ask for at once."""

    @staticmethod
    def _fake(monkeypatch, tmp_path, seconds: dict[str, float]):
        calls: list[tuple[str, int, str, float, float]] = []
        lock = threading.Lock()

        def fake_run_stage(params, stage, data, logs, seed, init, bare_step_s=0.0, extra_argv=None, env=None):
            start = time.monotonic()
            time.sleep(seconds[stage.name])
            with lock:
                calls.append((stage.name, seed, logs.name, start, time.monotonic()))
            return tmp_path / f"{stage.name}-{seed}.pt", True

        _fake_trainers(monkeypatch, fake_run_stage)
        return calls

    @staticmethod
    def _run(params, tmp_path, cache="cache"):
        return sch.train_all(params, proxy_at(SPEC, tmp_path / "data", []), tmp_path / cache, 0.0, None, "k")

    def test_a_job_waiting_for_its_init_holds_no_trainer(self, tmp_path, monkeypatch):
        calls = self._fake(monkeypatch, tmp_path, {"pre": 0.4, "ft": 0.05, "x": 0.05, "y": 0.05})
        s = dict(model="ViT-Tiny96-P8", batch_size=64, epochs=1)  # lr apart: a stage's key is its settings
        params = TrainParams(seeds=[0], data=SPEC.__dict__, stages=[
            Stage(name="pre", lr=1e-3, **s), Stage(name="ft", init="pre", lr=1e-3, **s), Stage(name="x", lr=2e-3, **s),
            Stage(name="y", lr=3e-3, **s)])
        self._run(params, tmp_path)
        end = {name: t1 for name, _, _, _, t1 in calls}
        # ft waits for pre; x and y, planned after ft, train on the other trainer meanwhile
        assert end["x"] < end["pre"] and end["y"] < end["pre"] < end["ft"]

    def test_what_continues_started_work_goes_first(self, tmp_path, monkeypatch):
        """One trainer: pre's fine-tune (and each evaluation) runs before the stages planned after it."""
        calls = self._fake(monkeypatch, tmp_path, {"pre": 0.05, "ft": 0.05, "x": 0.05, "y": 0.05})
        monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "1")
        evaluated: list[str] = []
        monkeypatch.setattr(st, "in_process", lambda target, args, log, env, poll=None: (
            evaluated.append(args[1].name), args[-1].write_text('{"scores": {}, "correct": {}}'), 0)[-1])
        s = dict(model="ViT-Tiny96-P8", batch_size=64, epochs=1)
        params = TrainParams(seeds=[0], data=SPEC.__dict__, stages=[
            Stage(name="pre", lr=1e-3, **s), Stage(name="ft", init="pre", lr=1e-3, **s), Stage(name="x", lr=2e-3, **s),
            Stage(name="y", lr=3e-3, **s)])
        self._run(params, tmp_path)
        assert [c[0] for c in calls] == ["pre", "ft", "x", "y"]
        assert evaluated == ["pre", "ft", "x", "y"]

    def test_runs_at_once_share_two_trainers_and_one_training_of_a_shared_stage(self, tmp_path, monkeypatch):
        calls = self._fake(monkeypatch, tmp_path, {"pre": 0.3, "ft": 0.3, "a": 0.2, "b": 0.2})
        s = dict(model="ViT-Tiny96-P8", batch_size=64, epochs=1)  # lr apart: a stage's key is its settings
        chain = TrainParams(seeds=[0], data=SPEC.__dict__, stages=[Stage(name="pre", lr=1e-3, **s),
                                                                   Stage(name="ft", init="pre", lr=1e-3, **s)])
        other = TrainParams(seeds=[0], data=SPEC.__dict__, stages=[
            Stage(name="pre", lr=1e-3, **s), Stage(name="a", lr=2e-3, **s), Stage(name="b", lr=3e-3, **s)])
        got: dict[str, dict] = {}
        barrier = threading.Barrier(2)

        def run(name, params):
            barrier.wait()
            got[name] = self._run(params, tmp_path)

        threads = [threading.Thread(target=run, args=x) for x in (("chain", chain), ("other", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        running = [sum(1 for _, _, _, t0, t1 in calls if t0 <= t < t1) for _, _, _, t, _ in calls]
        assert max(running) == 2, "never more trainers than the pool has, across runs"
        chain_ft = next(c for c in calls if c[0] == "ft")
        assert any(c[0] in ("a", "b") and c[3] < chain_ft[4] and chain_ft[3] < c[4] for c in calls), \
            "the other run trains beside the lone chain"
        assert [c[0] for c in calls].count("pre") == 1, "a stage both runs ask for is trained once"
        assert {got["chain"][("pre", 0)].trained, got["other"][("pre", 0)].trained} == {True, False}


class TestOwnEvaluation:
    """What a suite evaluates itself once its stages are trained (soups, epochs on the way to a
    target, linear probes) runs on a trainer slot, never as a third process beside two trainers."""

    def test_it_waits_for_a_free_slot_runs_on_it_and_goes_before_new_stages(self, monkeypatch):
        monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "1")
        busy, release = threading.Event(), threading.Event()
        sch.pool(1).submit(lambda: (busy.set(), release.wait(5)), priority=1)
        assert busy.wait(5)
        order: list[str] = []
        new_stage = sch.pool(1).submit(lambda: order.append("new stage"), priority=1)
        suite = threading.Thread(target=sch.on_a_slot, args=(lambda: order.append(threading.current_thread().name),))
        suite.start()
        time.sleep(0.2)
        assert order == [], "the only slot is taken"
        release.set()
        suite.join(5)
        new_stage.result(5)
        assert order == ["trainer slot 0", "new stage"]

    def test_its_error_reaches_the_suite(self, monkeypatch):
        monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "1")

        def fails():
            raise ValueError("no scores")

        with pytest.raises(ValueError, match="no scores"):
            sch.on_a_slot(fails)

    def test_an_evaluation_runs_on_a_slot_and_a_kept_one_waits_for_none(self, monkeypatch, tmp_path):
        monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "2")
        monkeypatch.setattr(sch, "evaluate_once", lambda *args: {"thread": threading.current_thread().name})
        got = sch.own_evaluation(None, None, None, tmp_path / "ckpt.pt", None, tmp_path / "eval.json", "seed 0")
        assert got["thread"].startswith("trainer slot")
        (tmp_path / "eval.json").write_text('{"kept": true}')
        monkeypatch.setattr(sch, "on_a_slot", None)  # a rerun reads what it kept, without a slot
        assert sch.own_evaluation(None, None, None, tmp_path / "ckpt.pt", None, tmp_path / "eval.json", "s") == {"kept": True}

    def test_from_a_pool_job_it_runs_in_place(self, monkeypatch):
        """A job holds its slot: waiting for another (one slot here) would wait forever."""
        monkeypatch.setenv("CLIPREPRO_TRAIN_JOBS", "1")
        inner = sch.pool(1).submit(lambda: sch.on_a_slot(lambda: threading.current_thread().name), priority=0)
        assert inner.result(timeout=5) == "trainer slot 0"


def _write_env_and_threads(path: str) -> int:
    import torch

    Path(path).write_text(f"{os.environ.get('CLIPREPRO_PROBE')} {torch.get_num_threads()}")
    print("to the log")
    return 3


@pytest.mark.slow
def test_in_process_runs_forked_with_the_environment_and_the_log(tmp_path):
    out = tmp_path / "out.txt"
    code = st.in_process(_write_env_and_threads, (str(out),), tmp_path / "log.txt",
                         {"CLIPREPRO_PROBE": "yes", "OMP_NUM_THREADS": "1"})
    assert code == 3 and out.read_text() == "yes 1" and "to the log" in (tmp_path / "log.txt").read_text()
