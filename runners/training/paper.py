"""The train runner at paper scale: a published recipe's checkpoints, released or trained by a
launcher (cliprepro.launching), evaluated zero-shot on ImageNet-1k with the paired gains the recipe
compares; and the optimizer step count a checkpoint holds (a resumed run must end with the same)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from cliprepro.provenance import device_info
from runners import zeroshot
from runners.schema import metric_names as names
from runners.schema.output import Output, exact, paired_gain
from runners.schema.paper import PaperRecipe


def run_recipe(recipe: PaperRecipe, build_dir: Path, trained: dict[str, Path] | None = None,
                 launch: dict | None = None) -> Output:
    """Zero-shot ImageNet-1k of every stage's checkpoint, when configured: the released one, or the
    one a launched training made (`trained`); and the paired gains between stages the recipe
    compares. A launched training that did not end COMPLETED is an error."""
    from cliprepro.userconfig import load

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Output(device=device_info(device))
    if launch is not None:
        if launch["state"] != "COMPLETED":
            raise RuntimeError(f"the launched training ended {launch['state']} (exit {launch.get('exit_code') or '?'})"
                               f"{', SLURM job ' + launch['job'] if launch.get('job') else ''}: no record of a "
                               "result; its logs are under logs/ (and the job's output file)")
        out.inputs["launch"] = {**launch, "steps": {s: optimizer_steps(p) for s, p in (trained or {}).items()}}
    config, path = load(build_dir.parent)
    imagenet = zeroshot.imagenet_root(config.imagenet_val)
    correct: dict[str, np.ndarray] = {}
    for stage in recipe.stages:
        metric = names.in1k_accuracy(stage.name)
        ckpt = (trained or {}).get(stage.name) or config.weights.get(stage.weights_key)
        if imagenet is None or ckpt is None or not Path(ckpt).exists():
            out.skip[metric] = (  # the config file by name: a record holds no path of the user's
                f"needs the released {stage.name} checkpoint (user config weights.{stage.weights_key}) and "
                f"the ImageNet-1k val folder (imagenet_val) in {path.name if path else 'cliprepro.yaml or $CLIPREPRO_CONFIG'}; "
                "nothing is downloaded")
            continue
        model, transform, tokenizer = zeroshot.load_model(stage.model, Path(ckpt), None, device)
        scores = zeroshot.classify_imagenet(model, tokenizer, transform, imagenet, device)
        out.metrics[metric] = exact(100 * scores.metrics["acc1"], "%")
        correct[stage.name] = scores.correct
        out.inputs[f"{stage.name}_checkpoint"] = {  # where it came from and a fingerprint, never the path
            "config_key": "trained here (launch)" if trained else f"weights.{stage.weights_key}",
            "sha256": hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()}
        out.inputs.setdefault("imagenet_val", {"config_key": "imagenet_val",
                                               "fingerprint": zeroshot.folder_fingerprint(imagenet)})
    for c in recipe.compare:
        if c.a in correct and c.b in correct:
            diff = 100 * (correct[c.b].astype(np.float64) - correct[c.a])
            out.metrics[names.in1k_gain(c.name)] = paired_gain([diff])
        else:
            missing = [x for x in (c.a, c.b) if x not in correct]
            out.skip[names.in1k_gain(c.name)] = (
                f"needs checkpoints of both {c.a} and {c.b} (missing: {', '.join(missing)}; "
                "trained from the printed recipe or released) and the ImageNet-1k val folder")
    return out


def optimizer_steps(ckpt: Path) -> int | None:
    """Optimizer steps a checkpoint has taken (AdamW's step count; kept across a resume)."""
    if not ckpt.exists():
        return None
    state = torch.load(ckpt, map_location="cpu", weights_only=True).get("optimizer", {}).get("state", {})
    return int(next(iter(state.values()))["step"]) if state else None
