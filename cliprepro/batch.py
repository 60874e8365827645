"""`run all`: the proxy training suites at once on the one trainer pool, then the rest one by one.

Run one after another, a suite whose work is a single chain (clipa_l16's one seed: pre-train, then
fine-tune) leaves one of two cores idle, and every suite's last stage does too. Started together,
the training suites hand their stages to the process-wide pool (runners.training.schedule), which
trains trainer_jobs() at once whatever suite they come from, so the cores stay busy. Timing suites
and the rest run after, alone: nothing trains beside a timed block. The suites of the group share
their wall time, so their runtime is judged as one: the group's wall time against the sum of their
declared runtime_s (cliprepro.runflow.judge_runtime); each record names the suites it ran beside.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

from cliprepro.layout import Layout
from cliprepro.runflow import Outcome, cuda_available, execute, judge_runtime, machine_pace_ms

TOGETHER_SCALES = ("proxy",)  # CPU training suites; a GPU trains one stage at a time anyway


def together(layout: Layout, names: list[str], scales: dict[str, str]) -> list[str]:
    """The suites of `names` that train at a CPU proxy scale (run at once), in their order."""
    if cuda_available():
        return []
    group = []
    for name in names:
        suite, _ = layout.load(name)
        if scales[name] in TOGETHER_SCALES and suite.runner_at(scales[name]) == "train":
            group.append(name)
    return group if len(group) > 1 else []


def run_suites(layout: Layout, names: list[str], scales: dict[str, str], **kwargs) -> Iterator[Outcome | str]:
    """Each suite's Outcome, the group's first (as each ends), then the others' in order. After the
    group: "" or why its runtime is an error."""
    group = together(layout, names, scales)
    if group:
        started = time.time()
        yield from _at_once(layout, group, scales, kwargs)
        yield _group_runtime(layout, group, scales, time.time() - started)
    for name in names:
        if name not in group:
            yield execute(layout, name, scale=scales[name], **kwargs)


def _at_once(layout: Layout, group: list[str], scales: dict[str, str], kwargs: dict) -> Iterator[Outcome]:
    """The group's outcomes as each suite ends (its table printed then, not after a slower one)."""
    ended: queue.Queue = queue.Queue()

    def one(name: str) -> None:
        try:
            ended.put(execute(layout, name, scale=scales[name], alongside=tuple(group), **kwargs))
        except BaseException as exc:  # given to the caller's thread, as a serial run would raise it
            ended.put(exc)

    # daemon threads: an interrupt ends the process without waiting for them (the trainers it
    # started get the same signal; a killed stage resumes on the next run)
    for name in group:
        threading.Thread(target=one, args=(name,), name=f"suite {name}", daemon=True).start()
    for _ in group:
        while True:
            try:
                got = ended.get(timeout=0.5)  # a timeout keeps the wait interruptible
                break
            except queue.Empty:
                continue
        if isinstance(got, BaseException):
            raise got
        yield got


def _group_runtime(layout: Layout, group: list[str], scales: dict[str, str], wall_s: float) -> str:
    declared_s = sum(layout.load(n)[0].scales[scales[n]].runtime_s for n in group)
    why, _ = judge_runtime(wall_s, declared_s, f"the {len(group)} training suites run at once (the sum of "
                           f"their scales.proxy)", machine_pace_ms)
    return why
