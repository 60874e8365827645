"""The one error type the CLI turns into exit status 2 (bad input), with file, field and what is allowed."""
from __future__ import annotations


class InputError(Exception):
    """Bad user input. The message names the file, the field and what is allowed."""

    def __init__(self, path: object, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{self.path}: {field}: {problem}")
