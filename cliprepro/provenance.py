"""Provenance of a run: code, packages, machine, device and backend flags.

Importing this module does not import torch; `device_info` does, when a runner calls it.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import threading
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

KEY_PACKAGES = ("torch", "torchvision", "open_clip_torch", "clip_benchmark", "webdataset", "timm",
                "numpy", "nltk", "pydantic", "matplotlib", "deepspeed")


OUTPUT_DIRS = ("results", "expected", "reports")  # written by runs; not code
COMMIT_ENV = "CLIPREPRO_COMMIT"  # for a copy of the tree without git (e.g. sent to a GPU machine)


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag; a tree without git is never `clean`: its commit is unknown, or the
    one given in $CLIPREPRO_COMMIT, and its dirty flag is null (unknown)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    try:
        head = git("rev-parse", "--show-toplevel")
        inside = head.returncode == 0 and Path(head.stdout.strip()).resolve() == Path(root).resolve()
    except OSError:  # no git executable
        inside = False
    if not inside:
        given = os.environ.get(COMMIT_ENV)
        return {"commit": given or None, "dirty": None,
                "source": f"${COMMIT_ENV}" if given else "unknown: no git repository at the root"}
    commit = git("rev-parse", "HEAD").stdout.strip()
    # records, expected values and reports change by running: they do not make the code dirty
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                     *(f":(exclude){d}" for d in OUTPUT_DIRS)).stdout.strip())
    return {"commit": commit or None, "dirty": dirty if commit else None, "source": "git"}


def packages() -> dict[str, Any]:
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                       if d.metadata["Name"])
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions,
            "installed_sha256": hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16],
            "installed_count": len(installed)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: Any) -> dict[str, Any]:
    """Device class and backend flags for the device a runner used (None: meta / no device)."""
    import torch

    info: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    if device is not None and torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_class=f"cuda: {props.name}", device_count=torch.cuda.device_count(),
                    cuda=torch.version.cuda, capability=f"{props.major}.{props.minor}",
                    flash_sdp=torch.backends.cuda.flash_sdp_enabled(),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    elif device is None:
        info.update(device_class="meta (exact counts, device-independent)", device_count=0)
    else:
        info.update(device_class=f"cpu: {cpu_model()}", device_count=1, cpu_cores=os.cpu_count())
    return info


class LoadSampler:
    """Samples the 1-minute load average every `every_s` seconds while a run is in progress."""

    def __init__(self, every_s: float = 10.0):
        self.every_s, self.samples = every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append(round(os.getloadavg()[0], 2))

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(round(os.getloadavg()[0], 2))  # at the end, so a short run has one too

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {"every_s": self.every_s, "n": len(s), "min": min(s, default=None),
                "max": max(s, default=None), "mean": round(sum(s) / len(s), 2) if s else None}


def collect(root: Path, device: dict[str, Any] | None = None) -> dict[str, Any]:
    """Provenance taken before a run starts (the device is added by the runner's output)."""
    return {
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(root),
        "packages": packages(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "device": device or {},
    }
