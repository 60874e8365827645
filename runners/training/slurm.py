"""Submit a batch script to SLURM and follow the job to its end, with SLURM's own commands
(`sbatch --parsable`, `sacct`, `squeue`); parsing their output is pure.

A requeued job (preemption, `scontrol requeue`) is followed on: it runs its script again, and every
stage of the script resumes from its latest checkpoint (runners.training.launch).
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from cliprepro.errors import InputError

# sacct states after which the job will not run again (REQUEUED / PREEMPTED jobs come back)
DONE = {"COMPLETED"}
FAILED = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def _call(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise InputError("--launcher", "slurm", f"`{argv[0]}` is not on PATH: run this on a SLURM login node") from None
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def submit(script: Path, cwd: Path) -> str:
    """The job id of the submitted script (sbatch --parsable prints `id` or `id;cluster`)."""
    out = _call(["sbatch", "--parsable", str(script)], cwd).strip()
    job = out.split(";")[0]
    if not job.isdigit():
        raise RuntimeError(f"sbatch printed no job id: {out!r}")
    return job


def parse_sacct(text: str) -> tuple[str, str] | None:
    """(state, exit code) of the job's own line of `sacct -X -n -P -o State,ExitCode` (None: not
    known to the accounting yet). A state such as 'CANCELLED by 123' keeps its first word."""
    for line in text.splitlines():
        if line.strip():
            state, _, code = line.partition("|")
            return state.split()[0], code.strip()
    return None


def state(job: str) -> tuple[str, str]:
    """The job's state: squeue while it is queued or running, else sacct's record."""
    queued = _call(["squeue", "-h", "-j", job, "-o", "%T"]).strip()
    if queued:
        return queued.split()[0], ""
    found = parse_sacct(_call(["sacct", "-j", job, "-X", "-n", "-P", "-o", "State,ExitCode"]))
    return found or ("UNKNOWN", "")


def follow(job: str, on_change, poll_s: float = 30.0, tick=None) -> tuple[str, str]:
    """Poll until the job is COMPLETED or failed for good; `on_change(state)` on each new state,
    `tick()` at every poll. The final (state, exit code)."""
    last = None
    while True:
        now, code = state(job)
        if now != last:
            on_change(now)
            last = now
        if tick is not None:
            tick()
        if now in DONE or now in FAILED:
            return now, code
        time.sleep(poll_s)
