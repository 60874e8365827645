"""`cliprepro run SUITE --scale paper --train --launcher X [--cluster FILE] --dry-run`: a published
recipe as one process, torchrun lines or a SLURM batch script, with its plan (GPUs, batches,
samples, GPU-hours from a measured throughput, cost). A launcher is never picked implicitly.

This build prints (--dry-run); it does not submit: without --dry-run it refuses (exit 2), saying
to run the printed lines.
"""
from __future__ import annotations

import os
from pathlib import Path

from cliprepro import record as rec
from cliprepro.errors import InputError
from cliprepro.layout import Layout

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
    from runners.schema.params import PaperRecipe
    from runners.training import launch

    from cliprepro.runflow import runner_params

    if args.suite == "all":
        raise InputError("--train", "suite", "one suite at a time")
    suite, _ = layout.load(args.suite)
    where = layout.suites / f"{args.suite}.yaml"
    if args.scale != "paper" or "paper" not in suite.scales:
        raise InputError(where, "scales", "--train runs the published recipe: --scale paper")
    if args.launcher is None:
        raise InputError("--launcher", "--launcher", f"name one of {', '.join(launch.LAUNCHERS)}: never picked implicitly")
    _, params = runner_params(layout, suite, "paper", None)
    if not isinstance(params, PaperRecipe):
        raise InputError(where, "scales.paper", "this suite's paper scale has no training recipe (it loads released weights)")
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
    if not args.dry_run:
        raise InputError("--train", "--dry-run", "this build prints the plan and the lines; it does not launch "
                         "them: add --dry-run, then run the printed lines (or sbatch the script)")
    return 0
