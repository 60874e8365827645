"""Where things live: suites/, expected/, results/, reports/ under a repo root; build/ for proxy runs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cliprepro.errors import InputError
from cliprepro.spec import ExpectedFile, Suite, load_expected, load_suite


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def find(cls, root: str | None) -> "Layout":
        path = Path(root) if root else Path.cwd()
        if not (path / "suites").is_dir() or not (path / "expected").is_dir():
            raise InputError(path, "--root", "not a cliprepro root: it needs suites/ and expected/ "
                             "(run from the repo root or pass --root DIR)")
        return cls(path.resolve())

    suites = property(lambda self: self.root / "suites")
    expected = property(lambda self: self.root / "expected")
    results = property(lambda self: self.root / "results")
    calibration = property(lambda self: self.root / "results" / "calibration")
    reports = property(lambda self: self.root / "reports")
    build = property(lambda self: self.root / "build")

    def suite_names(self) -> list[str]:
        return sorted(p.stem for p in self.suites.glob("*.yaml"))

    def load(self, name: str) -> tuple[Suite, ExpectedFile]:
        path = self.suites / f"{name}.yaml"
        if not path.exists():
            raise InputError(path, "SUITE", f"no such suite; known: {', '.join(self.suite_names())}")
        exp_path = self.expected / f"{name}.yaml"
        if not exp_path.exists():
            raise InputError(exp_path, "(file)", "every suite needs an expected file of the same name")
        return load_suite(path), load_expected(exp_path)
