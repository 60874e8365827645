"""Every (stage, seed) of a run on one process-wide pool of trainers, each job started when what it
starts from is trained.

The pool is shared by every run in the process, so suites run at once (cliprepro.batch: `run all`)
keep all cores busy: a lone chain of one suite (pretrain -> finetune of one seed) trains beside
another suite's stages instead of leaving a core idle. A job is handed to the pool only once its
init stage and MIM teacher are trained, so a worker never sits waiting for another job, and it goes
ahead of jobs that start new work (Pool). Two runs asking for the same stage (same cache folder)
while it trains share that one training, and evaluations likewise.
"""
from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from concurrent.futures import CancelledError, Future, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

from cliprepro import progress
from runners.schema.train_params import Stage, TrainParams as Params
from runners.training import sources
from runners.training.sources import Source
from runners.training.stage import evaluate_once, run_stage, stage_key, teacher_of, trainer_jobs


T = TypeVar("T")


@dataclass(frozen=True)
class Trained:
    checkpoint: Path
    logs: Path
    trained: bool | None  # False: reused from the cache (or another run's training); None: epochs 0
    seconds: float
    scores: dict  # the evaluator's JSON output


def train_all(params: Params, source: Source, cache: Path, bare_step_s: float,
              evaluator, eval_key: str) -> dict[tuple[str, int], Trained]:
    """Train and evaluate every (stage, seed) of a run on the shared pool (trainer_jobs() at once);
    a stage starts when its init stage (and MIM teacher) of the same seed is trained. The first
    seed of each stage also times the bare step. `evaluator(params, stage, checkpoint, data, out)`
    runs in its own process and writes JSON to `out`, kept beside the stage under `eval_key` (a
    fingerprint of the evaluation). A failed job fails the run once the rest of its jobs ended
    (they are cached: the next run resumes there); what started from it never starts."""
    jobs, threads = trainer_jobs()
    env = {"OMP_NUM_THREADS": str(threads)}
    fitted: dict[tuple[str, int], Future] = {}
    scored: dict[tuple[str, int], Future] = {}

    def fit(stage: Stage, seed: int, logs: Path, first: bool, init: Future | None, teacher: Future | None) -> tuple:
        from_ckpt = init.result()[0] if init is not None else None
        started, trained = time.time(), None
        if stage.mim is not None:
            from runners.training.mim import run_mim

            ckpt, trained = run_mim(params, stage, sources.for_stage(source, params, stage), logs, seed,
                                    teacher.result()[0] if teacher is not None else None, env=env)
        elif stage.epochs:
            ckpt, trained = run_stage(params, stage, sources.for_stage(source, params, stage), logs, seed, from_ckpt,
                                      bare_step_s if first else 0.0, env=env)
        else:
            assert from_ckpt is not None
            ckpt = from_ckpt
        return ckpt, trained, time.time() - started

    def score(stage: Stage, seed: int, logs: Path, fit_job: Future) -> Trained:
        ckpt, trained, seconds = fit_job.result()
        if trained and getattr(fit_job, "shared", False):  # another run's training of the same stage
            trained = False
        out = evaluate_once(evaluator, params, stage, ckpt, source, logs / f"eval-{eval_key}.json", f"seed {seed}")
        return Trained(ckpt, logs, trained, seconds, out)

    for stage in params.stages:  # in order: an init stage is always planned before its users
        init, teacher = params.init_of(stage), teacher_of(params, stage)
        for i, seed in enumerate(params.seeds_of(stage)):
            init_job = fitted[(init.name, seed)] if init else None
            teacher_job = fitted[(teacher.name, seed)] if teacher else None
            logs = cache / stage_key(params, stage, source, seed, threads)
            job = fitted[(stage.name, seed)] = once(str(logs), partial(
                after, [f for f in (init_job, teacher_job) if f is not None],
                partial(fit, stage, seed, logs, i == 0, init_job, teacher_job), jobs))
            scored[(stage.name, seed)] = once(str(logs / f"eval-{eval_key}"), partial(
                after, [job], partial(score, stage, seed, logs, job), jobs))
    wait(list(scored.values()))  # every job ends before the run does, failed or not
    return {key: _for_this_run(f) for key, f in scored.items()}


def _for_this_run(f: Future) -> Trained:
    t = f.result()  # raises a failed job's error
    if t.trained and getattr(f, "shared", False):
        return replace(t, trained=False)
    return t


_ON_A_SLOT = threading.local()  # .yes in the pool's threads
_LOCK = threading.Lock()  # the in-flight table
_POOLS_LOCK = threading.Lock()
_POOLS: dict[int, "Pool"] = {}
_IN_FLIGHT: dict[str, Future] = {}


class Pool:
    """`workers` threads taking jobs by priority, then in the order given: what continues started
    work (a chain's next stage, an evaluation) before a new stage, so suites finish (and say so)
    as they go and no long chain is left alone at the end. Daemon threads: an interrupt ends the
    process at once (each trainer dies with it, PR_SET_PDEATHSIG; the next run resumes)."""

    def __init__(self, workers: int):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"trainer slot {i}", daemon=True).start()

    def submit(self, fn: Callable[[], object], priority: int) -> Future:
        future: Future = Future()
        self._queue.put((priority, next(self._order), fn, future))
        return future

    def _work(self) -> None:
        _ON_A_SLOT.yes = True
        while True:
            _, _, fn, future = self._queue.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # the job's error goes to whoever waits on it
                future.set_exception(exc)


def pool(jobs: int) -> Pool:
    """The process's pool of `jobs` trainer slots (made once)."""
    with _POOLS_LOCK:
        if jobs not in _POOLS:
            _POOLS[jobs] = Pool(jobs)
        return _POOLS[jobs]


def on_a_slot(work: Callable[[], T]) -> T:
    """`work()` on a slot of the process's trainer pool, ahead of new stages, and its result: what
    a suite runs itself once its stages are trained (a soup's, an epoch's or a linear probe's
    evaluation) then never runs as a third process beside two trainers. Called from a pool job,
    it runs there: that job holds a slot already (waiting for another could wait forever)."""
    if getattr(_ON_A_SLOT, "yes", False):
        return work()
    return pool(trainer_jobs()[0]).submit(progress.carry(work), priority=0).result()


def own_evaluation(evaluator, params: Params, stage: Stage, ckpt: Path, source: Source, out: Path, what: str) -> dict:
    """An evaluation a suite runs itself once its stages are trained (a soup, an epoch on the way to
    a target, a linear probe): its kept scores when `out` exists, else evaluate_once on a trainer
    slot."""
    if out.exists():  # no slot to wait for: a rerun reads what it kept
        return json.loads(out.read_text())
    return on_a_slot(partial(evaluate_once, evaluator, params, stage, ckpt, source, out, what))


def after(deps: list[Future], work: Callable[[], object], jobs: int) -> Future:
    """`work()` on the pool once every future in `deps` is done (ahead of jobs without any); failed
    (with the first dep's error) without running when one of them failed. The caller's progress
    scope goes with it."""
    out: Future = Future()
    work = progress.carry(work)
    left, lock = [len(deps)], threading.Lock()

    def start() -> None:
        for d in deps:
            failed = CancelledError() if d.cancelled() else d.exception()
            if failed is not None:
                out.set_exception(failed)
                return
        _forward(pool(jobs).submit(work, priority=0 if deps else 1), out)

    def one_done(_: Future) -> None:
        with lock:
            left[0] -= 1
            ready = left[0] == 0
        if ready:
            start()

    if not deps:
        start()
    for d in deps:
        d.add_done_callback(one_done)
    return out


def once(key: str, make: Callable[[], Future]) -> Future:
    """The job for `key` (an output path) now in flight in this process, else make() started; a
    second asker gets the same future marked `shared` (its record says the stage was reused).
    Finished jobs are forgotten: a later ask finds the stage on disk (or trains it again when it is
    gone)."""
    with _LOCK:
        running = _IN_FLIGHT.get(key)
        if running is not None:
            shared: Future = Future()
            shared.shared = True  # type: ignore[attr-defined]
            _forward(running, shared)
            return shared
        future = _IN_FLIGHT[key] = make()
    future.add_done_callback(lambda f: _forget(key, f))
    return future


def _forward(source: Future, to: Future) -> None:
    """When `source` ends, `to` ends the same way: its result or its error."""
    source.add_done_callback(lambda f: to.set_exception(f.exception()) if f.exception() is not None
                             else to.set_result(f.result()))


def _forget(key: str, future: Future) -> None:
    with _LOCK:
        if _IN_FLIGHT.get(key) is future:
            del _IN_FLIGHT[key]
