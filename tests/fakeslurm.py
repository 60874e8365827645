"""A fake SLURM on one machine, for tests: `sbatch`, `squeue`, `sacct`, `scontrol` and `srun` as
`python fakeslurm.py COMMAND ARGS...` (install() writes the five commands into a folder for PATH).

Jobs live in $FAKE_SLURM_DIR as JSON. sbatch reads the script's #SBATCH lines (--nodes,
--ntasks-per-node, --output with %j, --requeue) and starts a detached keeper that runs the script
with SLURM's variables and records its end. `scontrol requeue ID` kills the running script's process
group (SIGKILL, as a preemption would) and the keeper runs it again with SLURM_RESTART_COUNT + 1.
srun starts SLURM_NTASKS copies of its command with SLURM_PROCID / SLURM_LOCALID, as SLURM does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

COMMANDS = ("sbatch", "squeue", "sacct", "scontrol", "srun")


def install(folder: Path, state: Path) -> dict[str, str]:
    """The five commands in `folder`; the environment that puts them first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        cmd = folder / name
        cmd.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {name} "$@"\n')
        cmd.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state)}


def _dir() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def read(job: str) -> dict:
    return json.loads((_dir() / f"job-{job}.json").read_text())


def _write(job: str, data: dict) -> None:
    path = _dir() / f"job-{job}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def sbatch(argv: list[str]) -> int:
    script = Path(argv[-1]).resolve()
    opts = dict(line[len("#SBATCH --"):].split("=", 1) for line in script.read_text().splitlines()
                if line.startswith("#SBATCH --") and "=" in line)
    job = str(1000 + len(list(_dir().glob("job-*.json"))))
    _write(job, {"state": "PENDING", "exit": "", "restarts": 0, "script": str(script), "cwd": os.getcwd(),
                 "nodes": int(opts.get("nodes", 1)), "tasks_per_node": int(opts.get("ntasks-per-node", 1)),
                 "output": opts.get("output", "slurm-%j.out").replace("%j", job)})
    subprocess.Popen([sys.executable, __file__, "_keep", job], start_new_session=True, env=os.environ.copy(),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job)
    return 0


def _keep(argv: list[str]) -> int:
    """The job's keeper: run the script until it ends without a requeue."""
    job = argv[0]
    while True:
        d = read(job)
        env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_SUBMIT_DIR": d["cwd"], "SLURM_JOB_NODELIST": "localhost",
               "SLURM_NNODES": str(d["nodes"]), "SLURM_NTASKS_PER_NODE": str(d["tasks_per_node"]),
               "SLURM_NTASKS": str(d["nodes"] * d["tasks_per_node"]), "SLURM_RESTART_COUNT": str(d["restarts"])}
        output = Path(d["cwd"]) / d["output"]
        if not output.parent.is_dir():  # as SLURM: a job whose output folder is missing fails
            _write(job, {**d, "state": "FAILED", "exit": "1:0"})
            return 1
        with open(output, "a") as out:
            proc = subprocess.Popen(["bash", d["script"]], cwd=d["cwd"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            _write(job, {**d, "state": "RUNNING", "pid": proc.pid})
            code = proc.wait()
        d = read(job)
        if d.get("requeue"):
            _write(job, {**d, "requeue": False, "restarts": d["restarts"] + 1, "state": "PENDING"})
            continue
        _write(job, {**d, "state": "COMPLETED" if code == 0 else "FAILED", "exit": f"{max(code, 0)}:0"})
        return 0


def scontrol(argv: list[str]) -> int:
    if argv[:2] == ["show", "hostnames"]:
        print("localhost")
        return 0
    if argv[0] == "requeue":
        d = read(argv[1])
        _write(argv[1], {**d, "requeue": True})
        os.killpg(d["pid"], signal.SIGKILL)
        return 0
    print(f"fake scontrol: {argv} not faked", file=sys.stderr)
    return 1


def squeue(argv: list[str]) -> int:
    d = read(argv[argv.index("-j") + 1])
    if d["state"] in ("PENDING", "RUNNING"):
        print(d["state"])
    return 0


def sacct(argv: list[str]) -> int:
    d = read(argv[argv.index("-j") + 1])
    print(f"{d['state']}|{d['exit']}")
    return 0


def srun(argv: list[str]) -> int:
    i = 0
    while argv[i].startswith("-"):  # srun's own options, up to the command
        i += 2 if argv[i] == "--container-image" else 1
    n = int(os.environ["SLURM_NTASKS"])
    procs = [subprocess.Popen(argv[i:], env={**os.environ, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r),
                                             "SLURM_NODEID": "0"}) for r in range(n)]
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    name, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"sbatch": sbatch, "_keep": _keep, "scontrol": scontrol, "squeue": squeue, "sacct": sacct,
              "srun": srun}[name](rest))
