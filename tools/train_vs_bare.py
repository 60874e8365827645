"""Benchmark: the proxy training path's end-to-end rate against its bare step, alone and two at once.

    python3 tools/bootstrap.py exec python tools/train_vs_bare.py [SUITE STAGE] [--epochs N]

Trains one proxy stage (default clipa_strategies' `base`, ViT-Tiny96-P8; one epoch) the way `run
all` does (runners.upstream.openclip_main, one thread, one loader worker; the suite's own arguments,
runners.training.stage.stage_argv), first alone, then two copies at once, and prints for each
process the end-to-end samples/s, the step-only samples/s, the data-wait fraction and the ratio to
the same model's bare step timed after training (runners.upstream.steplog). Nothing is cached or
kept: every run trains into a temporary folder. On a 2-core machine: alone, the loader worker has
the second core to itself; two at once, two steps and two loaders share both cores, as in the main
job, and the ratio falls to what the step's share of the CPU work per sample allows (docs/design.md,
"Where a stage's time goes"). Takes about a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cliprepro.layout import Layout  # noqa: E402
from runners.schema.train_params import TrainParams  # noqa: E402
from runners.training import sources  # noqa: E402
from runners.training.stage import stage_argv  # noqa: E402
from runners.upstream.steplog import summary  # noqa: E402

BARE_STEP_S = 3.0  # the bare step's timed block (as long as run all's first seed of a stage)


def _argv(suite: str, stage_name: str, epochs: int, logs: Path) -> list[str]:
    layout = Layout.find(str(ROOT))
    spec, _ = layout.load(suite)
    if "proxy" not in spec.scales or spec.runner_at("proxy") != "train":
        raise SystemExit(f"error: suite {suite} has no proxy scale that trains")
    params = TrainParams(**spec.params_for("proxy"))  # the one merge: suite params, then the scale's
    stage = next((s for s in params.stages if s.name == stage_name), None)
    if stage is None:
        raise SystemExit(f"error: suite {suite} has no proxy stage {stage_name!r}; "
                         f"known: {', '.join(s.name for s in params.stages)}")
    if params.init_of(stage) is not None or stage.mim is not None:
        raise SystemExit(f"error: stage {stage_name!r} starts from another stage; pick one trained from scratch")
    source = sources.of(params, layout.root / "build")
    stage = stage.model_copy(update={"epochs": epochs})
    return stage_argv(params, stage, source, logs, 0, None) + ["--cliprepro-bare-step-s", str(BARE_STEP_S)]


def _train_at_once(suite: str, stage: str, epochs: int, copies: int, work: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs, logs = [], []
    for i in range(copies):
        log = work / f"copy{copies}_{i}"
        log.mkdir(parents=True)
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "runners.upstream.openclip_main",
                                       *_argv(suite, stage, epochs, log)], env=env, cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=open(log / "trainer.log", "w")))
    for p, log in zip(procs, logs):
        if p.wait() != 0:
            raise SystemExit(f"error: the trainer failed (exit {p.returncode}); log: {log / 'trainer.log'}")
    return [summary(json.loads((log / "step_log.json").read_text())) for log in logs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", nargs="?", default="clipa_strategies")
    ap.add_argument("stage", nargs="?", default="base")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"{args.suite} · proxy · {args.stage}, {args.epochs} epoch(s), 1 thread + 1 loader worker each, "
          f"on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="train_vs_bare_") as tmp:
        machine = {}
        for copies in (1, 2):
            rates = _train_at_once(args.suite, args.stage, args.epochs, copies, Path(tmp))
            machine[copies] = sum(s["train_samples_per_s"] for s in rates)
            for i, s in enumerate(rates):
                print(f"{copies} at once, process {i}: end-to-end {s['train_samples_per_s']:.0f} samples/s, "
                      f"step-only {s['step_samples_per_s']:.0f}, data wait {100 * s['data_wait_fraction']:.1f}%, "
                      f"bare step {s['bare_step_samples_per_s']:.0f}: train_vs_bare_step "
                      f"{s['train_vs_bare_step']:.2f}", flush=True)
        print(f"the machine: {machine[1]:.0f} samples/s with one trainer, {machine[2]:.0f} with two "
              f"({machine[2] / machine[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
