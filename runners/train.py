"""Train runner: a recipe's stages through open_clip_train (via runners.upstream.openclip_main), each stage's
checkpoint evaluated zero-shot through clip_benchmark on the proxy data.

Stages run as subprocesses and are cached under build/train/ by a fingerprint of the data, the
stage and everything before it, and the seed: a killed run resumes from its last checkpoint
(`--resume latest`) when run again, and a control that shares a stage with a run reuses it.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cliprepro.provenance import device_info
from runners import zeroshot
from runners.training import contrasts
from runners.schema import metric_names as names
from runners.training import textcheck
from runners.schema.output import Output, exact, from_samples, paired_gain
from runners.schema.params import PaperRecipe, Stage, TrainParams as Params
from runners.training.proxydata import DataSpec, chance_pct, ensure
from runners.model.flops import tower_flops
from runners.model.masks import classify_kept, kept_patches, planned_mask
from runners import declared_metrics
from runners.model.models import image_token_count, model_config, with_overrides
from runners.model.models import uses_syntax_mask as model_uses_syntax
from runners.training.recipe import describe

__all__ = ["Params", "plan", "run"]
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build"
STAGE_DIR = "stage"  # open_clip_train --name inside each stage's cache folder
PROBE = "first_batch_tokens.json"
# Bumped when a change to the training path changes the weights a stage trains, so that stages
# cached before it are not reused (2: open_clip_train's sample shuffle seeded, runners.upstream.compat).
TRAIN_PATH_VERSION = 2


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_key(params: Params, stage: Stage, spec: DataSpec, seed: int) -> str:
    """Cache key of a stage's training: the data, the seed, the common settings and every stage of
    its init chain (not names, so suites that define the same stage share one trained model)."""
    chain: list[object] = []
    current: Stage | None = stage
    while current is not None:
        chain.insert(0, current.model_dump(exclude={"name", "n_seeds", "init"}))
        current = params.init_of(current)
    common = params.model_dump(include={"beta1", "beta2", "eps", "wd", "workers"})
    return _key(TRAIN_PATH_VERSION, spec.fingerprint(), seed, common, *chain)


def stage_argv(params: Params, stage: Stage, data: Path, logs: Path, seed: int,
               init: Path | None) -> list[str]:
    """open_clip_train arguments for one stage (the shards' sizes.json gives the sample count),
    then ours for runners.upstream.openclip_main (image / text masks, the first-batch token probe)."""
    shards = sorted((data / "train").glob("shard-*.tar"))
    argv = ["--train-data", f"{data / 'train'}/shard-{{00000..{len(shards) - 1:05d}}}.tar",
            "--dataset-type", "webdataset", "--model", stage.model, "--epochs", str(stage.epochs),
            "--batch-size", str(stage.batch_size), "--lr", str(stage.lr), "--warmup", str(stage.warmup),
            "--wd", str(params.wd), "--beta1", str(params.beta1), "--beta2", str(params.beta2),
            "--eps", str(params.eps), "--workers", str(params.workers), "--seed", str(seed),
            "--logs", str(logs), "--name", STAGE_DIR, "--save-frequency", "1", "--precision", "fp32",
            "--report-to", "", "--log-every-n-steps", "1000000"]
    if stage.image_size:
        argv += ["--force-image-size", str(stage.image_size)]
    if stage.patch_dropout is not None:
        argv += ["--force-patch-dropout", str(stage.patch_dropout)]
    if stage.context_length:
        argv += ["--force-context-length", str(stage.context_length)]
    if stage.train_num_samples:
        argv += ["--train-num-samples", str(stage.train_num_samples)]
    if init is not None:
        argv += ["--pretrained", str(init)]
    if stage.mask_kind != "random":
        argv += ["--cliprepro-mask-kind", stage.mask_kind]
    if stage.text_mask != "truncate":
        argv += ["--cliprepro-text-mask", stage.text_mask]
    return argv + ["--cliprepro-token-probe", str(logs / PROBE)]


# Looked up here, not between fork and exec, where a loader lock held by another thread could hang
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """In the trainer child, before exec: SIGTERM it when cliprepro dies (Linux), so a cliprepro
    killed alone does not leave a trainer writing into the cache (it resumes on the next run)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_stage(params: Params, stage: Stage, data: Path, logs: Path, seed: int,
              init: Path | None) -> Path:
    """The stage's final checkpoint, training (or resuming) only what is missing."""
    ckpts = logs / STAGE_DIR / "checkpoints"
    final = ckpts / f"epoch_{stage.epochs}.pt"
    if final.exists():
        return final
    argv = stage_argv(params, stage, data, logs, seed, init)
    for partial in ckpts.glob("*.tmp"):  # a save cut off by a kill: never a checkpoint
        partial.unlink()
    if list(ckpts.glob("epoch_*.pt")):
        argv += ["--resume", "latest"]
    elif (logs / STAGE_DIR).exists():
        shutil.rmtree(logs / STAGE_DIR)  # killed before its first checkpoint: start clean
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "runners.upstream.openclip_main", *argv], cwd=ROOT,
                          capture_output=True, text=True, preexec_fn=die_with_parent)
    if proc.returncode != 0 or not final.exists():
        lines = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip() and x[:2] not in ("I1", "W1")]
        tail = "\n".join(lines[-5:])  # the exception, not torch's dynamo statistics
        raise RuntimeError(f"stage {stage.name} (seed {seed}) failed with exit {proc.returncode}: {tail}")
    return final


def planned_tokens(stage: Stage) -> dict[str, int]:
    """Tokens that must reach the first image and text blocks in training (checked by the probe)."""
    cfg = with_overrides(model_config(stage.model), image_size=stage.image_size,
                         context_length=stage.context_length)
    side = (cfg["vision_cfg"]["image_size"]) // cfg["vision_cfg"]["patch_size"]
    patches = kept_patches(stage.mask_kind, side, side, stage.patch_dropout or 0.0)
    return {"image_tokens": image_token_count(cfg) - side * side + patches,
            "text_tokens": cfg["text_cfg"]["context_length"]}


def train_gflop_per_sample(stage: Stage) -> float:
    """Training GFLOPs per sample: 3x the forward FLOPs of both towers at the stage's tokens
    (FlopCounterMode on the meta device; backward taken as 2x forward)."""
    cfg = with_overrides(model_config(stage.model), image_size=stage.image_size,
                         context_length=stage.context_length, patch_dropout=stage.patch_dropout or 0.0)
    image, text = tower_flops(cfg)
    return 3 * (image + text) / 1e9


def plan(params: Params | PaperRecipe, scale: str) -> str:
    if isinstance(params, PaperRecipe):
        return ("paper-scale recipe (runs only with a launcher; this prints it):\n" + describe(params)
                + "\n  released weights, when configured, are evaluated zero-shot on ImageNet-1k val")
    spec = DataSpec(**params.data.model_dump())
    lines = [f"train: proxy data {spec.fingerprint()} ({spec.train_samples} training samples at "
             f"{spec.image_px} px), seeds {params.seeds}, 1 process on CPU via runners.upstream.openclip_main"]
    for s in params.stages:
        cuts = [f"{s.mask_kind} mask {s.patch_dropout:g}" if s.patch_dropout else "",
                f"text {s.text_mask} to {s.context_length}" if s.context_length else ""]
        tokens = planned_tokens(s)
        lines.append(f"  stage {s.name}: {s.model} at {s.image_size or 'native'} px"
                     f"{''.join(', ' + c for c in cuts if c)} ({tokens['image_tokens']} image / "
                     f"{tokens['text_tokens']} text tokens), {s.epochs} epochs"
                     f"{f' of {s.train_num_samples} samples' if s.train_num_samples else ''}, batch "
                     f"{s.batch_size}, lr {s.lr}, warmup {s.warmup}, from {s.init}, seeds {params.seeds_of(s)}")
    return "\n".join(lines)


def run_released(recipe: PaperRecipe, build_dir: Path) -> Output:
    """Zero-shot ImageNet-1k of the released checkpoint of every stage, when configured, and the
    paired gains between stages the recipe compares."""
    from cliprepro.userconfig import load

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Output(device=device_info(device))
    config, path = load(build_dir.parent)
    imagenet = zeroshot.imagenet_root(config.imagenet_val)
    correct: dict[str, np.ndarray] = {}
    for stage in recipe.stages:
        metric = names.in1k_accuracy(stage.name)
        ckpt = config.weights.get(stage.weights_key)
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
        out.inputs[f"{stage.name}_checkpoint"] = {  # the config key and a fingerprint, never the path
            "config_key": f"weights.{stage.weights_key}", "sha256": hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()}
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


def uses_syntax_mask(params: Params) -> bool:
    """CLIPA's syntax text mask anywhere in the run: a stage, its model's config, a text check."""
    return (any(s.text_mask == "syntax" or model_uses_syntax(s.model) for s in params.stages)
            or any("syntax" in (t.mask, t.reference) for t in params.text_checks))


def missing_resources(params: Params) -> str:
    """Why this run cannot start here ('' when it can): NLTK's tagger for the syntax mask."""
    from runners.upstream.compat import MissingResource, require_nltk_tagger

    if not uses_syntax_mask(params):
        return ""
    try:
        require_nltk_tagger()
    except MissingResource as exc:
        return f"skipped: CLIPA's syntax text mask needs it. {exc}"
    return ""


def _check_probe(stage: Stage, logs: Path) -> list[str]:
    """A mismatch between the planned tokens and those the first training batch carried."""
    probe = logs / PROBE
    if stage.epochs == 0:
        return []
    if not probe.exists():
        return [f"stage {stage.name}: no first-batch token probe at {probe}"]
    seen, planned = json.loads(probe.read_text()), planned_tokens(stage)
    errors = [f"stage {stage.name}: {k} planned {planned[k]}, first training batch had {seen.get(k)}"
              for k in planned if seen.get(k) != planned[k]]
    mask = mask_seen(seen)
    want = planned_mask(stage.mask_kind, stage.patch_dropout)
    if mask != want:  # counts cannot tell grid, block and random apart; the positions can
        errors.append(f"stage {stage.name}: image mask planned {want}, the first training batch kept "
                      f"patches as {mask}")
    return errors


def mask_seen(probe: dict) -> str | None:
    """How the first training batch's kept patch positions look (None: not recorded)."""
    if "image_positions" not in probe:
        return None
    h, w = probe["image_grid"]
    return classify_kept(probe["image_positions"], h, w)


def run(params: Params | PaperRecipe, scale: str, build_dir: Path = CACHE) -> Output:
    if isinstance(params, PaperRecipe):
        return run_released(params, build_dir)
    device = torch.device("cpu")
    out = Output(device=device_info(device))
    missing = missing_resources(params)
    if missing:  # skipped, saying what to install: never a half-run, never a download
        out.skip = {m: missing for m in declared_metrics(params)}
        return out
    spec = DataSpec(**params.data.model_dump())
    data = ensure(spec, build_dir / "data")
    out.inputs = {"data": f"proxy procedural data {spec.fingerprint()}", "data_spec": params.data.model_dump(),
                  "substitutes_paper_data": True, "checkpoints": {},
                  "chance_acc1_mean_pct": round(chance_pct(params.attributes), 3)}
    correct: dict[tuple[str, int], np.ndarray] = {}
    accs: dict[str, list[float]] = {}
    ckpts: dict[tuple[str, int], Path] = {}
    gflop: dict[str, float] = {}
    for stage in params.stages:
        init = params.init_of(stage)
        own = stage.epochs * (stage.train_num_samples or spec.train_samples) * train_gflop_per_sample(stage)
        gflop[stage.name] = own + (gflop[init.name] if init else 0.0)  # compute from scratch to here
        for seed in params.seeds_of(stage):
            logs = build_dir / "train" / stage_key(params, stage, spec, seed)
            started = time.time()
            from_ckpt = ckpts[(init.name, seed)] if init else None
            ckpt = from_ckpt if stage.epochs == 0 else run_stage(params, stage, data, logs, seed, from_ckpt)
            assert ckpt is not None
            ckpts[(stage.name, seed)] = ckpt
            out.errors += _check_probe(stage, logs)
            out.inputs["checkpoints"][f"{stage.name}/seed{seed}"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
            scores_here = evaluate(params, stage, ckpt, data, device)
            correct[(stage.name, seed)] = scores_here.pop("_correct")
            for key, value in scores_here.items():  # metric names carry the stage: acc1_<stage>_<what>
                name = (names.stage_accuracy(stage.name, key.removeprefix("acc1_")) if key.startswith("acc1_")
                        else names.stage_retrieval(key, stage.name))
                accs.setdefault(name, []).append(value)
            probe = logs / PROBE
            out.points.append({"stage": stage.name, "seed": seed, "seconds": round(time.time() - started, 1),
                               "train_gflop": round(gflop[stage.name], 3), "cache_key": logs.name,
                               **({k: v for k, v in json.loads(probe.read_text()).items() if k.endswith("_tokens")}
                                  | {"image_mask_seen": mask_seen(json.loads(probe.read_text()))}
                                  if probe.exists() and stage.epochs else {}),
                               "predictions": zeroshot.pack(correct[(stage.name, seed)]),
                               **{k: round(v, 4) for k, v in scores_here.items()}})
    for name, values in accs.items():  # per attribute: shown, not judged (claims judge paired metrics)
        out.metrics[name] = from_samples(values, "%") if len(values) > 1 else exact(values[0], "%")
        out.metrics[name] = out.metrics[name].model_copy(update={"over": None})
    for stage in params.stages:  # a stage's mean accuracy over seeds, with its evaluation s.e.
        seeds = [s for s in params.seeds_of(stage) if (stage.name, s) in correct]
        out.metrics[names.stage_accuracy(stage.name, "mean")] = paired_gain([100 * correct[(stage.name, s)] for s in seeds], "%")
    out.metrics.update(contrasts.all_metrics(params, correct))
    if params.text_checks:
        out.metrics.update(textcheck.measure(params.text_checks, data))
    return out


def evaluate(params: Params, stage: Stage, ckpt: Path, data: Path, device: torch.device) -> dict:
    """Zero-shot scores of one checkpoint (every stage at eval_image_size when set; its own text
    context, since a text tower trained at a short context has no later positions trained)."""
    eval_px = params.eval_image_size or stage.image_size
    model, transform, tokenizer = zeroshot.load_model(stage.model, ckpt, eval_px, device, stage.context_length)
    per_attr: list[np.ndarray] = []
    scores: dict = {}
    for attribute in params.attributes:
        result = zeroshot.classify(model, tokenizer, transform, data / "eval" / f"wds_{attribute}", attribute, device)
        scores[f"acc1_{attribute}"] = 100 * result.metrics["acc1"]
        per_attr.append(result.correct)
    correct = np.concatenate(per_attr)
    scores["acc1_mean"] = 100 * float(correct.mean())
    if params.retrieval:
        r = zeroshot.retrieve(model, tokenizer, transform, data / "eval" / "wds_retrieval", "retrieval", device,
                              recall_k=names.RETRIEVAL_RECALL_K)
        scores.update({k.replace("@", "_at_"): 100 * v for k, v in r.metrics.items()})
    scores["_correct"] = correct
    return scores
