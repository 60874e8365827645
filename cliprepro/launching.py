"""`cliprepro run SUITE --scale paper --train --launcher X [--cluster FILE] [--dry-run]`: a published
recipe as one process, torchrun lines or a SLURM batch script, with its plan (GPUs, batches,
samples, GPU-hours from a measured throughput, cost). A launcher is never picked implicitly.

Without --dry-run: preflight (runners.training.preflight: shards, GPUs and memory, disk; exit 2
with the reasons), then the stages run here (local, torchrun) or as one SLURM job that is
submitted and followed to its end (`--job ID` follows one submitted before); then the trained
checkpoints are collected into a paper-scale record (ImageNet zero-shot when configured; the job
and each stage's optimizer step count in its inputs). A job that ends failed is an `error` record.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from cliprepro import record as rec
from cliprepro.errors import InputError, env_number
from cliprepro.layout import Layout
from cliprepro.userconfig import load as load_config

CLUSTER_ENV = "CLIPREPRO_CLUSTER"


def measured_rates(layout: Layout):
    """rate_of(stage, gpu) for runners.training.launch.plan: the step throughput (samples/s on one
    GPU) of the same model, image size and patch dropout in a committed gpu-scale throughput record
    whose device class names `gpu`."""
    timed = []
    for path in rec.find(layout.results):
        _, r = rec.read(path)
        params = r.config.get("params", {})
        if r.scale == "gpu" and r.status == "completed" and "arms" in params:
            timed.append(r)

    def rate_of(stage, gpu: str):
        for r in timed:
            device = str(r.provenance.get("device", {}).get("device_class", ""))
            if gpu.lower() not in device.lower():
                continue
            params = r.config["params"]
            for arm in params["arms"]:
                same = ((arm.get("model") or params["model"]) == stage.model
                        and (arm.get("image_size") or params.get("image_size")) == stage.image_size
                        and (arm.get("patch_dropout") or 0.0) == (stage.patch_dropout or 0.0))
                metric = r.metrics.get(f"img_per_s_step_{arm['name']}")
                if same and metric is not None and metric.value:
                    return metric.value, ""
        return None, (f"no gpu-scale record in results/ times {stage.model} at {stage.image_size or 'its own'} px "
                      f"on a {gpu}; run a throughput suite with that arm at --scale gpu there first")
    return rate_of


def cmd_train(args, layout: Layout) -> int:
    from runners.schema.deepspeed import DeepSpeedRecipe
    from runners.schema.paper import PaperRecipe
    from runners.training import launch

    from cliprepro.runflow import runner_params

    if args.suite == "all":
        raise InputError("--train", "suite", "one suite at a time")
    if args.job and args.launcher != "slurm":  # it skips the data check and preflight: only for a job already running
        raise InputError("--job", "--job", "follows a submitted SLURM job: only with --launcher slurm")
    suite, _ = layout.load(args.suite)
    where = layout.suites / f"{args.suite}.yaml"
    if args.scale != "paper" or "paper" not in suite.scales:
        raise InputError(where, "scales", "--train runs the published recipe: --scale paper")
    if args.launcher is None:
        raise InputError("--launcher", "--launcher", f"name one of {', '.join(launch.LAUNCHERS)}: never picked implicitly")
    runner, params = runner_params(layout, suite, "paper", None)
    if isinstance(params, DeepSpeedRecipe):
        return _deepspeed(args, where, runner, params)
    if not isinstance(params, PaperRecipe):
        raise InputError(where, "scales.paper", "this suite's paper scale has no training recipe (it loads released weights)")
    config, config_path = load_config(layout.root)
    if config.train_data:  # the user's copy of the paper's data (the suite's path is a placeholder)
        params = params.model_copy(update={"train_data": config.train_data})
    path = args.cluster or os.environ.get(CLUSTER_ENV)
    cluster = launch.load_cluster(Path(path) if path else None)
    if args.launcher in ("local", "torchrun") and cluster.nodes > 1:
        raise InputError(path or "--cluster", "nodes", f"{args.launcher} runs on one node; use --launcher slurm for {cluster.nodes}")
    plans = launch.plan(params, cluster, measured_rates(layout))
    print(f"{suite.suite} @ paper, --train --launcher {args.launcher}"
          f"{' (cluster: ' + Path(path).name + ')' if path else ' (default cluster: 1 node x 8 A100)'}")
    print(launch.describe(params, cluster, plans))
    if args.launcher == "slurm":
        print("\n# sbatch script (submit with: sbatch <file>)\n" + launch.sbatch_script(suite.suite, params, cluster, plans))
    else:
        print("\n" + "\n".join(launch.commands(args.launcher, params, cluster, plans)))
    if args.dry_run:
        return 0
    if args.launcher == "local" and cluster.gpus_per_node > 1:
        raise InputError(path or "--cluster", "gpus_per_node", "local runs one process on one GPU; "
                         f"use --launcher torchrun for {cluster.gpus_per_node}")
    if not config.train_data and not args.job:
        raise InputError(config_path or layout.root / "cliprepro.yaml", "train_data",
                         "the webdataset shards to train on (e.g. /data/laion400m/{00000..41407}.tar): not configured")
    logs = layout.root / "logs"  # open_clip_train's default, relative to where the stages run
    if not args.job:
        preflight_or_refuse(params, cluster, args.launcher, logs, config_path or "cliprepro.yaml")
    launched = run_stages(args, layout, suite.suite, params, cluster, plans, logs)
    return collect(layout, suite.suite, params, logs, launched)


def _deepspeed(args, where: Path, runner, recipe) -> int:
    """A DeepSpeed recipe (EVA-CLIP's) runs with the paper's own trainer: its plan, config and lines."""
    if args.launcher != "deepspeed":
        raise InputError(where, "scales.paper", f"a DeepSpeed recipe (runner deepspeed): --launcher deepspeed, "
                         f"not {args.launcher}")
    print(runner.plan(recipe, "paper"))
    if not args.dry_run:
        raise InputError("--launcher", "deepspeed", "this recipe runs with EVA-CLIP's own trainer: add --dry-run "
                         "and run the printed line on each node of your cluster")
    return 0


def preflight_or_refuse(recipe, cluster, launcher: str, logs: Path, where) -> None:
    from runners.training import preflight

    saves = []
    for stage in recipe.stages:
        saved = stage.epochs // _flag(recipe.common_flags, "--save-frequency", 1)
        if "--delete-previous-checkpoint" in recipe.common_flags:
            saved = min(saved, 2)
        saves.append((stage.name, saved, preflight.checkpoint_bytes(stage.model)))
    here = launcher != "slurm" and cluster.gpu != preflight.CPU  # under SLURM: in the job (its script)
    found = preflight.problems(recipe.train_data, cluster.gpus_per_node if here else None, cluster.gpu_memory_gib,
                               saves, logs, preflight.gather(logs))
    if found:
        raise InputError(where, "preflight", "; ".join(found))


def _flag(argv: list[str], name: str, default: int) -> int:
    return int(argv[argv.index(name) + 1]) if name in argv else default


def run_stages(args, layout: Layout, suite: str, recipe, cluster, plans, logs: Path) -> dict:
    """Run every stage (local, torchrun: here, in order; slurm: one job, submitted and followed);
    what happened, for the record."""
    from cliprepro import progress
    from cliprepro.record import atomic_write_text
    from runners.training import launch, slurm

    total = sum(s.epochs for s in recipe.stages)
    done = lambda: sum(len(list((logs / s.name / "checkpoints").glob("epoch_[0-9]*.pt"))) for s in recipe.stages)  # noqa: E731
    if args.launcher != "slurm":
        for line in launch.commands(args.launcher, recipe, cluster, plans):
            print(f"running: {line}", flush=True)
            code = subprocess.run(shlex.split(line), cwd=layout.root).returncode
            if code != 0:
                return {"launcher": args.launcher, "state": "FAILED", "exit_code": str(code), "failed_line": line}
        return {"launcher": args.launcher, "state": "COMPLETED", "exit_code": "0"}
    folder = layout.build / "launch" / suite
    job = args.job
    if job is None:
        script = folder / f"{suite}.sbatch"
        logs.mkdir(parents=True, exist_ok=True)  # the job's --output goes there: SLURM fails a job without it
        atomic_write_text(script, launch.sbatch_script(suite, recipe, cluster, plans))
        job = slurm.submit(script, layout.root)
        atomic_write_text(folder / f"job-{job}.json", json.dumps({"job": job, "script": str(script)}))
        print(f"submitted SLURM job {job} ({script}); follow it again with --job {job}", flush=True)
    with progress.unit(f"SLURM job {job}: {suite} stages", total, "epoch") as bar:
        final, code = slurm.follow(job, lambda state: print(f"job {job}: {state}", flush=True),
                                   env_number("CLIPREPRO_SLURM_POLL_S", "30", float, 0.1), lambda: bar.set(done()))
    return {"launcher": "slurm", "job": job, "state": final, "exit_code": code}


def collect(layout: Layout, suite: str, recipe, logs: Path, launched: dict) -> int:
    """The trained checkpoints into a paper-scale record (runners.training.paper.run_recipe)."""
    from cliprepro.cli import _outcome_status, _print_outcome
    from cliprepro.runflow import execute

    trained = {s.name: logs / s.name / "checkpoints" / f"epoch_{s.epochs}.pt" for s in recipe.stages}
    launched = {**launched, "train_data": data_identity(recipe.train_data)}
    outcome = execute(layout, suite, scale="paper", runner_kwargs={"trained": trained, "launch": launched})
    _print_outcome(outcome)
    return _outcome_status(outcome)


def data_identity(pattern: str) -> dict:
    """The training shards as a record may hold them (runners.training.shards.identity)."""
    from runners.training import shards

    return {"config_key": "train_data", **shards.identity(pattern), "substitutes_paper_data": True}
