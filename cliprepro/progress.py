"""Progress of long work: one line per unit (suite, scale, stage or arm, seed, round...).

On a terminal each unit is a tqdm bar with its ETA; elsewhere (CI logs, pipes) it is one short
line when the unit ends, with its duration. Callers update a bar only between timed blocks, never
inside one. `scope` names the suite and scale once (cliprepro.runflow), so runners only say what
the unit is; the scope is per context (contextvars), so suites run at once each keep their own, and
work handed to another thread takes it along with `carry`.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Callable, Iterator, TypeVar

_prefix: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("progress_scope", default=())
_lock = threading.Lock()
_rows: set[int] = set()  # terminal rows held by open bars (units running at once, e.g. two trainers)


def _take_row() -> int:
    with _lock:
        row = next(i for i in range(len(_rows) + 1) if i not in _rows)
        _rows.add(row)
        return row


def _free_row(row: int) -> None:
    with _lock:
        _rows.discard(row)


def interactive() -> bool:
    """A terminal with a size (tqdm draws nothing on a pty of 0 x 0, e.g. `script` without one)."""
    return sys.stderr.isatty() and _columns() > 0


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def scope(*words: str) -> Iterator[None]:
    """Units started inside are prefixed with `words` (e.g. the suite and its scale)."""
    token = _prefix.set(_prefix.get() + words)
    try:
        yield
    finally:
        _prefix.reset(token)


def prefix() -> tuple[str, ...]:
    return _prefix.get()


T = TypeVar("T")


def carry(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` bound to the caller's scope, to run in another thread (a pool does not carry contexts)."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.copy().run(fn, *args, **kwargs)


class Unit:
    """A bar on a terminal, a line at the end elsewhere; `update(n)` / `set(done)` between blocks."""

    def __init__(self, what: str, total: int | None, unit: str):
        self.label = " · ".join([*_prefix.get(), what])
        self.total, self.unit, self.done = total, unit, 0
        self.started = time.monotonic()
        self._bar = None
        if interactive():
            from tqdm import tqdm

            self._row = _take_row()
            self._bar = tqdm(total=total, desc=self.label, unit=unit, leave=True, file=sys.stderr, disable=False,
                             position=self._row, dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                             "{n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]")

    def set(self, done: int) -> None:
        if self._bar is not None and done > self.done:
            self._bar.update(done - self.done)
        self.done = max(done, self.done)

    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def close(self, note: str = "") -> None:
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.close()
            _free_row(self._row)
            return
        took = time.monotonic() - self.started
        count = f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
        print(f"  {self.label}: {count} in {took:.0f} s{f' ({note})' if note else ''}", file=sys.stderr,
              flush=True)


@contextlib.contextmanager
def unit(what: str, total: int | None = None, unit: str = "step") -> Iterator[Unit]:
    u = Unit(what, total, unit)
    note = ""
    try:
        yield u
    except BaseException:
        note = "failed"
        raise
    finally:
        u.close(note)
