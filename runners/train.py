"""Train runner: a recipe's stages through open_clip_train (via runners.openclip_main), each stage's
checkpoint evaluated zero-shot through clip_benchmark on the proxy data.

Stages run as subprocesses and are cached under build/train/ by a fingerprint of the data, the
stage and everything before it, and the seed: a killed run resumes from its last checkpoint
(`--resume latest`) when run again, and a control that shares a stage with a run reuses it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cliprepro.provenance import device_info
from runners import zeroshot
from runners.output import Output, exact, from_samples, paired_gain
from runners.params import PaperRecipe, Stage, TrainParams as Params
from runners.proxydata import DataSpec, ensure
from runners.recipe import describe

__all__ = ["Params", "params_schema", "plan", "run"]
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_argv(params: Params, stage: Stage, data: Path, logs: Path, seed: int,
               init: Path | None) -> list[str]:
    """open_clip_train arguments for one stage (the shards' sizes.json gives the sample count)."""
    shards = sorted((data / "train").glob("shard-*.tar"))
    argv = ["--train-data", f"{data / 'train'}/shard-{{00000..{len(shards) - 1:05d}}}.tar",
            "--dataset-type", "webdataset", "--model", stage.model, "--epochs", str(stage.epochs),
            "--batch-size", str(stage.batch_size), "--lr", str(stage.lr), "--warmup", str(stage.warmup),
            "--wd", str(params.wd), "--beta1", str(params.beta1), "--beta2", str(params.beta2),
            "--eps", str(params.eps), "--workers", str(params.workers), "--seed", str(seed),
            "--logs", str(logs), "--name", stage.name, "--save-frequency", "1", "--precision", "fp32",
            "--report-to", "", "--log-every-n-steps", "1000000"]
    if stage.image_size:
        argv += ["--force-image-size", str(stage.image_size)]
    if stage.patch_dropout is not None:
        argv += ["--force-patch-dropout", str(stage.patch_dropout)]
    if init is not None:
        argv += ["--pretrained", str(init)]
    return argv


def run_stage(params: Params, stage: Stage, data: Path, logs: Path, seed: int,
              init: Path | None) -> Path:
    """The stage's final checkpoint, training (or resuming) only what is missing."""
    ckpts = logs / stage.name / "checkpoints"
    final = ckpts / f"epoch_{stage.epochs}.pt"
    if final.exists():
        return final
    argv = stage_argv(params, stage, data, logs, seed, init)
    for partial in ckpts.glob("*.tmp"):  # a save cut off by a kill: never a checkpoint
        partial.unlink()
    if list(ckpts.glob("epoch_*.pt")):
        argv += ["--resume", "latest"]
    elif (logs / stage.name).exists():
        shutil.rmtree(logs / stage.name)  # killed before its first checkpoint: start clean
    proc = subprocess.run([sys.executable, "-m", "runners.openclip_main", *argv], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not final.exists():
        lines = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip() and x[:2] not in ("I1", "W1")]
        tail = "\n".join(lines[-5:])  # the exception, not torch's dynamo statistics
        raise RuntimeError(f"stage {stage.name} (seed {seed}) failed with exit {proc.returncode}: {tail}")
    return final


def params_schema(scale: str) -> type:
    return PaperRecipe if scale == "paper" else Params


def plan(params: Params | PaperRecipe, scale: str) -> str:
    if isinstance(params, PaperRecipe):
        return ("paper-scale recipe (runs only with a launcher; this prints it):\n" + describe(params)
                + "\n  released weights, when configured, are evaluated zero-shot on ImageNet-1k val")
    spec = DataSpec(**params.data.model_dump())
    lines = [f"train: proxy data {spec.fingerprint()} ({spec.train_samples} training samples at "
             f"{spec.image_px} px), seeds {params.seeds}, 1 process on CPU via runners.openclip_main"]
    for s in params.stages:
        lines.append(f"  stage {s.name}: {s.model} at {s.image_size or 'native'} px, {s.epochs} epochs, "
                     f"batch {s.batch_size}, lr {s.lr}, warmup {s.warmup}, from {s.init}")
    return "\n".join(lines)


def run_released(recipe: PaperRecipe, build_dir: Path) -> Output:
    """Zero-shot ImageNet-1k of the released checkpoint of every stage, when configured."""
    from cliprepro.userconfig import load

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Output(device=device_info(device))
    config, path = load(build_dir.parent)
    imagenet = zeroshot.imagenet_root(config.imagenet_val)
    for stage in recipe.stages:
        metric = f"in1k_acc1_{stage.name}"
        ckpt = config.weights.get(stage.weights_key)
        if imagenet is None or ckpt is None or not Path(ckpt).exists():
            out.skip[metric] = (
                f"needs the released {stage.name} checkpoint (user config weights.{stage.weights_key}) and "
                f"the ImageNet-1k val folder (imagenet_val) in {path or 'cliprepro.yaml or $CLIPREPRO_CONFIG'}; "
                "nothing is downloaded")
            continue
        model, transform, tokenizer = zeroshot.load_model(stage.model, Path(ckpt), None, device)
        scores = zeroshot.classify_imagenet(model, tokenizer, transform, imagenet, device)
        out.metrics[metric] = exact(100 * scores.metrics["acc1"], "%")
        out.inputs[f"{stage.name}_checkpoint_sha256"] = hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()
    return out


def run(params: Params | PaperRecipe, scale: str, build_dir: Path = CACHE) -> Output:
    if isinstance(params, PaperRecipe):
        return run_released(params, build_dir)
    device = torch.device("cpu")
    out = Output(device=device_info(device))
    spec = DataSpec(**params.data.model_dump())
    data = ensure(spec, build_dir / "data")
    out.inputs = {"data": f"proxy procedural data {spec.fingerprint()}", "data_spec": params.data.model_dump(),
                  "substitutes_paper_data": True, "checkpoints": {}}
    correct: dict[tuple[str, int], np.ndarray] = {}
    accs: dict[str, list[float]] = {}
    for seed in params.seeds:
        previous: Path | None = None
        # cache key: what changes training (not how it is evaluated)
        chain: list[object] = [spec.fingerprint(), seed, params.model_dump(
            include={"beta1", "beta2", "eps", "wd", "workers"})]
        for stage in params.stages:
            chain.append(stage.model_dump())
            logs = build_dir / "train" / _key(*chain)
            started = time.time()
            ckpt = previous if stage.epochs == 0 else run_stage(
                params, stage, data, logs, seed, previous if stage.init == "previous" else None)
            assert ckpt is not None
            out.inputs["checkpoints"][f"{stage.name}/seed{seed}"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
            eval_px = params.eval_image_size or stage.image_size
            model, transform, tokenizer = zeroshot.load_model(stage.model, ckpt, eval_px, device)
            per_attr, scores_here = [], {}
            for attribute in params.attributes:
                scores = zeroshot.classify(model, tokenizer, transform, data / "eval" / f"wds_{attribute}",
                                           attribute, device)
                scores_here[f"acc1_{attribute}"] = 100 * scores.metrics["acc1"]
                per_attr.append(scores.correct)
            correct[(stage.name, seed)] = np.concatenate(per_attr)
            scores_here["acc1_mean"] = 100 * float(correct[(stage.name, seed)].mean())
            if params.retrieval:
                r = zeroshot.retrieve(model, tokenizer, transform, data / "eval" / "wds_retrieval", "retrieval", device)
                scores_here.update({k.replace("@", "_at_"): 100 * v for k, v in r.metrics.items()})
            for key, value in scores_here.items():  # metric names carry the stage: acc1_<stage>_<what>
                what = key.removeprefix("acc1_")
                accs.setdefault(f"acc1_{stage.name}_{what}" if key.startswith("acc1_") else f"{key}_{stage.name}",
                                []).append(value)
            out.points.append({"stage": stage.name, "seed": seed, "seconds": round(time.time() - started, 1),
                               "predictions": zeroshot.pack(correct[(stage.name, seed)]),
                               **{k: round(v, 4) for k, v in scores_here.items()}})
            previous = ckpt
    for name, values in accs.items():
        out.metrics[name] = from_samples(values, "%") if len(values) > 1 else exact(values[0], "%")
    for c in params.compare:
        diffs = [100 * (correct[(c.b, s)].astype(np.float64) - correct[(c.a, s)]) for s in params.seeds]
        out.metrics[f"gain_{c.name}"] = paired_gain(diffs, params.bootstrap)
    return out
