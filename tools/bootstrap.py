#!/usr/bin/env python3
"""Build the one heavy virtualenv once, then run commands in it.

Every entry point (README commands, tox envs, .ci/run) goes through here, so torch (~6 GB) is
installed once per machine and per dependency set, never per tox env (tox 4 recreates a shared
env_dir when another env name uses it, docs/traps.md).

The venv is keyed by a sha256 of pyproject.toml and constraints.txt; it lives under
$CLIPREPRO_VENV_ROOT (default ~/.cache/cliprepro). Only the dependencies are installed: the
project's own code always runs from the working tree (PYTHONPATH), so two clones can share a venv.

    python3 tools/bootstrap.py                 # build if needed, print the venv path
    python3 tools/bootstrap.py exec CMD ARGS   # build if needed, run CMD inside it

It also provides NLTK's English POS tagger (CLIPA's syntax text mask): installed once with NLTK's
own downloader into the cache, saying so; if that cannot reach the network, a sibling
shared/nltk_data folder (as CI lays it out); else the syntax suites are `skipped`, saying how to
install it. $NLTK_DATA, when set, is used as it is.

Stdlib only: this runs before anything is installed.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_FILES = ("pyproject.toml", "constraints.txt")
EXTRAS = ("test", "zero")  # the one venv: tests and DeepSpeed too (CI runs the ZeRO-1 test)
MARKER = ".cliprepro-complete"


def venv_key() -> str:
    digest = hashlib.sha256()
    for name in KEY_FILES:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("CLIPREPRO_VENV_ROOT", Path.home() / ".cache" / "cliprepro"))


def venv_dir() -> Path:
    return cache_root() / f"venv-{venv_key()}"


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return reqs


def ensure() -> Path:
    target = venv_dir()
    if (target / MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second bootstrap waits, then finds the marker
        if (target / MARKER).exists():
            return target
        if target.exists():  # an interrupted build: never trust a half-installed venv
            shutil.rmtree(target)
        print(f"[bootstrap] building {target} (once per dependency set)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        py = str(target / "bin" / "python")
        cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q",
               "-c", str(ROOT / "constraints.txt"), *requirements()]
        subprocess.run(cmd, check=True)
        (target / MARKER).write_text(" ".join(requirements()) + "\n")
    return target


NLTK_TAGGER = Path("taggers") / "averaged_perceptron_tagger_eng"
NLTK_TRIED = ".nltk-tagger-tried"  # one download attempt per venv, not one per command


def nltk_cache() -> Path:
    return cache_root() / "nltk_data"


def nltk_data(target: Path) -> str | None:
    """A folder with NLTK's English tagger, installing it with NLTK's downloader once (said on
    stderr); else a sibling shared/nltk_data; else None (the syntax suites will be skipped)."""
    cache, shared = nltk_cache(), ROOT.parent / "shared" / "nltk_data"
    if (cache / NLTK_TAGGER).is_dir():
        return str(cache)
    if not (target / NLTK_TRIED).exists():
        (target / NLTK_TRIED).touch()
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # NLTK refuses world-writable folders
        print(f"[bootstrap] installing NLTK's English POS tagger (CLIPA's syntax text mask) into {cache} "
              "with NLTK's downloader (once)", file=sys.stderr)
        try:
            subprocess.run([str(target / "bin" / "python"), "-m", "nltk.downloader", "-d", str(cache),
                            "averaged_perceptron_tagger_eng"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            pass
        if (cache / NLTK_TAGGER).is_dir():
            return str(cache)
        print("[bootstrap] could not download it (no network?)"
              + (f"; using {shared}" if (shared / NLTK_TAGGER).is_dir() else
                 f"; the syntax suites will be skipped until you run: {target / 'bin' / 'python'} -m "
                 f"nltk.downloader -d {cache} averaged_perceptron_tagger_eng"), file=sys.stderr)
    return str(shared) if (shared / NLTK_TAGGER).is_dir() else None


def run_in(target: Path, argv: list[str]) -> int:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(target)
    env["PATH"] = f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if "NLTK_DATA" not in env:
        found = nltk_data(target)
        if found:
            env["NLTK_DATA"] = found
    return subprocess.run(argv, env=env).returncode


def main(argv: list[str]) -> int:
    target = ensure()
    if not argv:
        print(target)
        return 0
    if argv[0] != "exec" or len(argv) < 2:
        print("usage: bootstrap.py [exec CMD ARGS...]", file=sys.stderr)
        return 2
    return run_in(target, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
