"""Train runner: a recipe's stages through open_clip_train (via runners.upstream.openclip_main), each stage's
checkpoint evaluated zero-shot through clip_benchmark on the proxy data.

Each stage is one trainer process (runners.training.stage), cached under build/train/ by the
training path's fingerprint, the data, the stage and everything before it, and the seed: a killed
run resumes from its last checkpoint when run again, and a control that shares a stage with a run
reuses it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from cliprepro import predictions
from cliprepro.provenance import device_info
from runners import zeroshot
from runners.training import contrasts
from runners.schema import metric_names as names
from runners.training import textcheck
from cliprepro.record import Metric
from runners.schema.output import Output, exact, from_samples, paired_gain
from runners.schema.paper import PaperRecipe
from runners.schema.train_params import Stage, TrainParams as Params
from runners.training import sources
from runners.training.proxydata import DataSpec, chance_pct
from runners.training.sources import Source
from runners.model.flops import tower_flops
from runners import declared_metrics
from runners.model.models import model_config, with_overrides
from runners.model.models import uses_syntax_mask as model_uses_syntax
from runners.training import ablation, fingerprint, linprobe, paper, probe, soups, targets
from runners.training.recipe import describe
from runners.training.schedule import own_evaluation, train_all
from runners.training.stage import PROBE, STAGE_DIR, STEP_LOG, teacher_of, trainer_jobs
from runners.upstream import steplog

__all__ = ["Params", "plan", "run"]
CACHE = Path(__file__).resolve().parent.parent / "build"
BARE_STEP_S = 0.5  # timed block of the bare step, once per stage (its first seed)


def train_gflop_per_sample(stage: Stage, teacher_model: str | None = None) -> float:
    """Training GFLOPs per sample: 3x the forward FLOPs of both towers at the stage's tokens
    (FlopCounterMode on the meta device; backward taken as 2x forward). A MIM stage: 3x its image
    tower's forward plus its teacher's image tower forward (the text tower is not trained)."""
    cfg = with_overrides(model_config(stage.model), image_size=stage.image_size,
                         context_length=stage.context_length, patch_dropout=stage.patch_dropout or 0.0)
    image, text = tower_flops(cfg)
    if stage.mim is not None:
        return (3 * image + tower_flops(model_config(teacher_model or stage.model))[0]) / 1e9
    return 3 * (image + text) / 1e9


def plan(params: Params | PaperRecipe, scale: str) -> str:
    if isinstance(params, PaperRecipe):
        return ("paper-scale recipe (runs only with a launcher; this prints it):\n" + describe(params)
                + "\n  released weights, when configured, are evaluated zero-shot on ImageNet-1k val")
    if params.own_data:
        data = ("your own data (user config own_data: its shards, sample count and zero-shot sets; "
                "time-to-target targets from own_data.targets)")
    else:
        spec = DataSpec(**params.data.model_dump())
        data = f"proxy data {spec.fingerprint()} ({spec.train_samples} training samples at {spec.image_px} px)"
    where = "one process at a time on the GPU" if scale == "gpu" else "on CPU"
    lines = [f"train: {data}, seeds {params.seeds}, {params.precision}, {where}, via runners.upstream.openclip_main"]
    for s in params.stages:
        cuts = [f"{s.mask_kind} mask {s.patch_dropout:g}" if s.patch_dropout else "",
                f"text {s.text_mask} to {s.context_length}" if s.context_length else ""]
        tokens = probe.planned_tokens(s)
        lines.append(f"  stage {s.name}: {s.model} at {s.image_size or 'native'} px"
                     f"{''.join(', ' + c for c in cuts if c)} ({tokens['image_tokens']} image / "
                     f"{tokens['text_tokens']} text tokens), {s.epochs} epochs"
                     f"{f' of {s.train_num_samples} samples' if s.train_num_samples else ''}"
                     f"{f' of its first {s.train_shards} shard(s)' if s.train_shards else ''}, batch "
                     f"{s.batch_size}, lr {s.lr}, warmup {s.warmup}, from {s.init}, seeds {params.seeds_of(s)}")
    lines += [f"  soup {x.name}: uniform weight average of {', '.join(x.of)} per seed; its best ingredient "
              f"picked on the first {x.selection_fraction:g} of each attribute's eval examples" for x in params.soups]
    return "\n".join(lines)


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


def run(params: Params | PaperRecipe, scale: str, build_dir: Path = CACHE, *, trained: dict[str, Path] | None = None,
        launch: dict | None = None) -> Output:
    """`trained` and `launch` (paper scale): checkpoints a launched training made, per stage, and
    how it ran (cliprepro.launching)."""
    if isinstance(params, PaperRecipe):
        return paper.run_recipe(params, build_dir, trained, launch)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the trainer runs
    out = Output(device=device_info(device))
    missing = missing_resources(params)
    if missing:  # skipped, saying what to install: never a half-run, never a download
        out.skip = {m: missing for m in declared_metrics(params)}
        return out
    source = sources.of(params, build_dir)
    if source is None:  # own data named but not configured: skipped, saying what to set
        out.skip = {m: sources.NOT_CONFIGURED for m in declared_metrics(params)}
        return out
    out.inputs = {"data": source.label, **source.identity, "training_path": fingerprint.COMMITTED, "checkpoints": {}}
    jobs, threads = trainer_jobs()
    out.inputs["trainers"] = {"at_once": jobs, "threads_each": threads}
    trained = train_all(params, source, build_dir / "train", BARE_STEP_S, evaluate_to, eval_key(params, source))
    chance = (next(iter(trained.values())).scores["chance_pct"] if source.own  # from the sets' classes
              else chance_pct(params.attributes))
    out.inputs["chance_acc1_mean_pct"] = round(chance, 3)
    correct: dict[tuple[str, int], np.ndarray] = {}
    accs: dict[str, list[float]] = {}
    gflop: dict[str, float] = {}
    for stage in params.stages:
        init, teacher = params.init_of(stage), teacher_of(params, stage)
        own = stage.epochs * source.epoch_samples(stage) * train_gflop_per_sample(stage, teacher and teacher.model)
        # compute from scratch to here: the init chain's, and a MIM teacher's training (charged to its students)
        gflop[stage.name] = own + (gflop[init.name] if init else 0.0) + (gflop[teacher.name] if teacher else 0.0)
        for seed in params.seeds_of(stage):
            t = trained[(stage.name, seed)]
            ckpt, logs = t.checkpoint, t.logs
            rates = steplog.summary(json.loads((logs / STEP_LOG).read_text())) if (logs / STEP_LOG).exists() else {}
            out.errors += probe.problems(stage, logs)
            out.inputs["checkpoints"][f"{stage.name}/seed{seed}"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
            scores_here = dict(t.scores["scores"])
            correct[(stage.name, seed)] = predictions.unpack(t.scores["correct"])
            for key, value in scores_here.items():  # metric names carry the stage: acc1_<stage>_<what>
                name = (names.stage_accuracy(stage.name, key.removeprefix("acc1_")) if key.startswith("acc1_")
                        else names.stage_retrieval(key, stage.name))
                accs.setdefault(name, []).append(value)
            probe_file = logs / PROBE
            out.points.append({"stage": stage.name, "seed": seed, "train_seconds": round(t.seconds, 1),
                               "train_gflop": round(gflop[stage.name], 3), "cache_key": logs.name,
                               "trained": t.trained, **{k: round(v, 4) for k, v in rates.items()},
                               **({k: v for k, v in json.loads(probe_file.read_text()).items() if k.endswith("_tokens")}
                                  | {"image_mask_seen": probe.mask_seen(json.loads(probe_file.read_text()))}
                                  if probe_file.exists() and stage.epochs else {}),
                               "predictions": predictions.pack(correct[(stage.name, seed)]),
                               **{k: round(v, 4) for k, v in scores_here.items()}})
    for soup in params.soups:
        _soup(params, soup, source, trained, correct, accs, out, build_dir / "train")
    for tt in params.time_to_target:  # every saved epoch of its stages evaluated (cached beside them)
        tt = _target(tt, source, out)
        if tt is None:
            continue

        def at_epoch(stage: Stage, seed: int, epoch: int) -> float:
            logs = trained[(stage.name, seed)].logs
            ckpt = logs / STAGE_DIR / "checkpoints" / f"epoch_{epoch}.pt"
            got = own_evaluation(evaluate_to, params, stage, ckpt, source,
                                 logs / f"eval-{eval_key(params, source)}-epoch{epoch}.json", f"seed {seed} epoch {epoch}")
            return got["scores"]["acc1_mean"]
        metrics, points, skips = targets.measure(tt, params, trained, at_epoch, chance)
        out.metrics.update(metrics)
        out.points += points
        out.skip.update(skips)
    for name, values in accs.items():  # per attribute: shown, not judged (claims judge paired metrics)
        out.metrics[name] = from_samples(values, "%") if len(values) > 1 else exact(values[0], "%")
        out.metrics[name] = out.metrics[name].model_copy(update={"over": None})
    for name in [s.name for s in params.stages] + [s.name for s in params.soups]:  # mean accuracy over seeds, with its eval s.e.
        seeds = [s for s in params.seeds if (name, s) in correct]
        out.metrics[names.stage_accuracy(name, "mean")] = paired_gain([100 * correct[(name, s)] for s in seeds], "%")
    out.metrics.update(rate_metrics(out.points))
    out.metrics.update(contrasts.all_metrics(params, correct))
    out.metrics.update(ablation.rows_metrics(params, correct, out.points))
    if params.probes:
        out.metrics.update(_probes(params, source, trained))
    if params.text_checks:
        out.metrics.update(textcheck.measure(params.text_checks, source.proxy_root))
    return out


def _probes(params: Params, source: Source, trained: dict) -> dict:
    """Linear-probe accuracy of each probed stage's image tower (cached beside it) and the paired
    gains (runners.training.linprobe)."""
    probed = [s for s in params.stages if any(s.name in (c.a, c.b) for c in params.probes)]
    correct: dict[tuple[str, int], np.ndarray] = {}
    for stage in probed:
        for seed in params.seeds_of(stage):
            t = trained[(stage.name, seed)]
            got = own_evaluation(linprobe.probe_to, params, stage, t.checkpoint, source,
                                 t.logs / f"probe-{eval_key(params, source)}.json", f"linear probe seed {seed}")
            correct[(stage.name, seed)] = predictions.unpack(got["correct"])
    metrics = {names.probe_accuracy(s.name): paired_gain([100 * correct[(s.name, seed)] for seed in params.seeds_of(s)], "%")
               for s in probed}
    for c in params.probes:
        metrics[names.probe_gain(c.name)] = contrasts.contrast(params, correct, {c.b: 1.0, c.a: -1.0})
    return metrics


def _target(tt, source: Source, out: Output):
    """The comparison with its pre-registered target: the suite's (procedural data) or, on own
    data, the user config's own_data.targets; None when that has none for it (its metrics skipped,
    saying what to set: a target is never taken from the run itself)."""
    if not source.own:
        return tt
    if tt.name not in source.targets:
        why = (f"skipped: pre-register the mean zero-shot accuracy to reach on your data as "
               f"own_data.targets.{tt.name} in the user config, before the run (docs/own-data.md)")
        out.skip.update({m: why for m in (names.speedup_to_target(tt.name), names.step_s_to_target(tt.name, "arm"),
                                          names.step_s_to_target(tt.name, "baseline"))})
        return None
    return tt.model_copy(update={"target_acc1_pct": source.targets[tt.name],
                                 "target_source": f"user config own_data.targets.{tt.name}"})


def _soup(params: Params, soup, source: Source, trained: dict, correct: dict, accs: dict,
          out: Output, cache: Path) -> None:
    """Per seed its ingredients share: the uniform soup, evaluated like a stage (cached beside it),
    then its paired metrics (runners.training.soups)."""
    first = next(s for s in params.stages if s.name == soup.of[0])  # one architecture (TrainParams checks)
    seeds = [s for s in params.seeds if all((n, s) in trained for n in soup.of)]
    for seed in seeds:
        ckpt = soups.checkpoint(soup, {n: (trained[(n, seed)].checkpoint, trained[(n, seed)].logs.name)
                                       for n in soup.of}, cache)
        as_soup = first.model_copy(update={"name": soup.name})  # its architecture, the soup's name in the progress
        scores = own_evaluation(evaluate_to, params, as_soup, ckpt, source,
                                ckpt.parent / f"eval-{eval_key(params, source)}.json", f"seed {seed}")
        correct[(soup.name, seed)] = predictions.unpack(scores["correct"])
        for key, value in scores["scores"].items():
            if key.startswith("acc1_"):
                accs.setdefault(names.stage_accuracy(soup.name, key.removeprefix("acc1_")), []).append(value)
        out.points.append({"stage": soup.name, "seed": seed, "soup_of": list(soup.of), "predictions": scores["correct"],
                           **{k: round(v, 4) for k, v in scores["scores"].items() if k.startswith("acc1_")}})
    metrics, per_seed = soups.measure(params, soup, correct, seeds)
    out.metrics.update(metrics)
    for extra in per_seed:  # beside the soup's own point of that seed
        point = next(p for p in out.points if p["stage"] == soup.name and p["seed"] == extra["seed"])
        point.update({k: v for k, v in extra.items() if k not in ("soup", "seed")})


def rate_metrics(points: list[dict]) -> dict[str, Metric]:
    """Per trained stage, over its seeds: end-to-end and step-only samples/s, the % of time waiting
    for data, and the end-to-end rate over the bare step. Speeds carry the worst seed's wait
    fraction, so a data-bound measurement is judged inconclusive (cliprepro.claims)."""
    out: dict[str, Metric] = {}
    for stage in dict.fromkeys(p["stage"] for p in points if "stage" in p):  # curve points: no stage
        timed = [p for p in points if p.get("stage") == stage and "train_samples_per_s" in p]
        if not timed:
            continue
        wait = max(p["data_wait_fraction"] for p in timed)
        for kind, unit, key, scale in (("train_samples_per_s", "samples/s", "train_samples_per_s", 1),
                                       ("step_samples_per_s", "samples/s", "step_samples_per_s", 1),
                                       ("data_wait_pct", "%", "data_wait_fraction", 100),
                                       ("train_vs_bare_step", "x", "train_vs_bare_step", 1)):
            values = [scale * p[key] for p in timed if key in p]
            if values:
                m = from_samples(values, unit) if len(values) > 1 else exact(values[0], unit)
                speed = kind != "data_wait_pct"
                out[names.train_rate(kind, stage)] = m.model_copy(
                    update={"over": None, "data_wait_fraction": round(wait, 4) if speed else None})
    return out


EVAL_VERSION = 2  # bumped when evaluate() changes what it measures (cached evaluations are keyed by it)


def eval_key(params: Params, source: Source) -> str:
    """What a stage's evaluation depends on besides its checkpoint and model (both in its folder)."""
    blob = json.dumps([EVAL_VERSION, source.eval_key, params.eval_image_size, params.attributes,
                       params.retrieval], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def evaluate_to(params: Params, stage: Stage, ckpt: Path, source: Source, out: Path) -> int:
    """evaluate(), in its own process (runners.training.stage.in_process), written to `out`; on the
    GPU when one is visible (as the trainer)."""
    from cliprepro.record import atomic_write_text

    scores = evaluate(params, stage, ckpt, source, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    correct, chance = scores.pop("_correct"), scores.pop("_chance_pct")
    atomic_write_text(out, json.dumps({"scores": scores, "correct": predictions.pack(correct), "chance_pct": chance}))
    return 0


def evaluate(params: Params, stage: Stage, ckpt: Path, source: Source, device: torch.device) -> dict:
    """Zero-shot scores of one checkpoint on each of the source's sets, and their mean over all
    examples (every stage at eval_image_size when set; its own text context, since a text tower
    trained at a short context has no later positions trained)."""
    eval_px = params.eval_image_size or stage.image_size
    model, transform, tokenizer = zeroshot.load_model(stage.model, ckpt, eval_px, device, stage.context_length)
    per_set: list[np.ndarray] = []
    scores: dict = {}
    guessed = 0.0  # expected correct answers of a uniform guess: chance of the mean
    for name, folder in source.eval_sets.items():
        result = (zeroshot.classify_imagenet(model, tokenizer, transform, folder, device) if name == sources.IMAGENET
                  else zeroshot.classify(model, tokenizer, transform, folder, name, device))
        scores[f"acc1_{name}"] = 100 * result.metrics["acc1"]
        per_set.append(result.correct)
        guessed += len(result.correct) / result.meta["n_classes"]
    correct = np.concatenate(per_set)
    scores["acc1_mean"] = 100 * float(correct.mean())
    if params.retrieval and not source.own:
        r = zeroshot.retrieve(model, tokenizer, transform, source.proxy_root / "eval" / "wds_retrieval", "retrieval",
                              device, recall_k=names.RETRIEVAL_RECALL_K)
        scores.update({k.replace("@", "_at_"): 100 * v for k, v in r.metrics.items()})
    scores["_correct"], scores["_chance_pct"] = correct, 100 * guessed / len(correct)
    return scores
