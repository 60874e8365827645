"""Provenance of a run: code, packages, machine, device and backend flags.

Importing this module does not import torch; `device_info` does, when a runner calls it.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

KEY_PACKAGES = ("torch", "torchvision", "open_clip_torch", "clip_benchmark", "webdataset", "timm",
                "numpy", "nltk", "pydantic", "matplotlib", "deepspeed")


def git_state(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


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


def collect(root: Path, device: dict[str, Any]) -> dict[str, Any]:
    return {
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(root),
        "packages": packages(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "device": device,
    }
