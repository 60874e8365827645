"""The one error type the CLI turns into exit status 2 (bad input), with file, field and what is allowed."""
from __future__ import annotations

import os
from pathlib import Path


class InputError(Exception):
    """Bad user input. The message names the file, the field and what is allowed."""

    def __init__(self, path: object, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{self.path}: {field}: {problem}")


def env_number(name: str, default: str, kind: type = int, at_least: float = 1):
    """$name as a number (`kind`, >= at_least), its default when unset; a typo is bad input
    naming the variable, never a traceback from deep inside a run."""
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value >= at_least:  # `not >=` also refuses NaN
        what = "a whole number" if kind is int else "a number"
        raise InputError("environment", name, f"{raw!r}: must be {what} >= {at_least}")
    return value


def out_folder(value: str, flag: str) -> Path:
    """A folder argument to write into (made when missing): refused up front when it names a file,
    not after a run whose records would then have nowhere to go."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InputError(value, flag, "is a file: name a folder to write into (it is made when missing)")
    return path
