"""Released-weights runner: each model's checkpoint, evaluated zero-shot through clip_benchmark on
ImageNet-1k (and the retrieval sets its claims name) with the protocol of its claim pinned.

Weights and data come from the user config only (cliprepro/userconfig.py); what is missing makes
that model's claims `skipped`, naming the key to set. A checkpoint is identified in the record by its
sha256 and how it was found, never by a user path; the protocol (templates and class names by hash,
resize mode, interpolation, precision, batch size) and whether the spec could be checked go beside it.

`explain`: when a claim misses, the model is evaluated again over the declared confounders, one
setting at a time against the pinned protocol, and the settings that close the gap are named,
each with what it cost.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from cliprepro.provenance import device_info
from cliprepro.record import Metric
from cliprepro import predictions
from runners import zeroshot
from runners.model import weights
from runners.schema import metric_names as names
from runners.schema.output import Output
from runners.schema.released import ReleasedModel, ReleasedParams as Params

__all__ = ["Params", "plan", "run", "explain", "configured"]
# the alternative each confounder tries (from the pinned setting)
OTHER = {"resize_mode": {"shortest": ["squash", "longest"], "squash": ["shortest"], "longest": ["shortest"]},
         "interpolation": {"bicubic": ["bilinear"], "bilinear": ["bicubic"]},
         "templates": {"openai": ["one"], "one": ["openai"]},
         "precision": {"amp": ["fp32"], "fp32": ["amp"]}}


def plan(params: Params, scale: str) -> str:
    lines = ["released weights, evaluated zero-shot through clip_benchmark (nothing is downloaded):"]
    for m in params.models:
        p = m.protocol
        source = f"weights.{m.weights_key}" + (f", else open_clip {m.pretrained} from the HF cache" if m.pretrained else "")
        lines.append(f"  {m.name}: {m.model} ({'QuickGELU' if m.quick_gelu else 'GELU'}) from {source}; ImageNet-1k "
                     f"val (imagenet_val), {p.templates} templates, resize {p.resize_mode}, {p.interpolation}, "
                     f"{p.precision}, batch {p.batch_size}"
                     + (f"; retrieval R@{params.retrieval_k} on {', '.join(m.retrieval)}" if m.retrieval else ""))
    lines.append(f"  on a miss: re-evaluated over {', '.join(params.confounders)}, one at a time")
    return "\n".join(lines)


def _user(build_dir: Path):
    from cliprepro.userconfig import load

    return load(build_dir.parent)


def configured(params: Params, root: Path) -> bool:
    """Every model's weights and the ImageNet folder are here (so `--scale auto` picks paper)."""
    from cliprepro.userconfig import load

    config, _ = load(root)
    if zeroshot.imagenet_root(config.imagenet_val) is None:
        return False
    try:
        for m in params.models:
            weights.resolve(config.weights.get(m.weights_key), m.weights_key, m.model, m.pretrained)
    except weights.NotAvailable:
        return False
    return True


def _metrics_of(params: Params, m: ReleasedModel) -> list[str]:
    return [names.in1k_accuracy(m.name)] + [names.released_retrieval(d, params.retrieval_k, m.name) for d in m.retrieval]


def accuracy_metric(correct: np.ndarray) -> Metric:
    """Top-1 in %, with its exact binomial 95% interval (shown beside a released-weights claim, not used)."""
    k, n = int(np.sum(correct)), int(len(correct))
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return Metric(value=100 * k / n, lo=100 * ci.low, hi=100 * ci.high, n=n, confidence=0.95, unit="%", over="examples")


def evaluate(m: ReleasedModel, source: weights.Resolved, imagenet: Path, device: torch.device,
             **setting) -> zeroshot.Scores:
    """ImageNet-1k zero-shot of one model under its protocol, any field replaced by `setting`
    (quick_gelu, resize_mode, interpolation, templates, precision)."""
    p = {**m.protocol.model_dump(), "quick_gelu": m.quick_gelu, **setting}
    spec = weights.declared_spec(m.model, m.pretrained, p["quick_gelu"], m.image_size, p["resize_mode"], p["interpolation"])
    net, transform, tokenizer = weights.load(source, m.model, spec, device)
    return zeroshot.classify_imagenet(net, tokenizer, transform, imagenet, device, p["batch_size"],
                                      templates=p["templates"], amp=p["precision"] == "amp")


def run(params: Params, scale: str, build_dir: Path) -> Output:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Output(device=device_info(device))
    config, path = _user(build_dir)
    where = path.name if path else "cliprepro.yaml or $CLIPREPRO_CONFIG"
    imagenet = zeroshot.imagenet_root(config.imagenet_val)
    for m in params.models:
        metrics = _metrics_of(params, m)
        try:
            source = weights.resolve(config.weights.get(m.weights_key), m.weights_key, m.model, m.pretrained)
        except weights.NotAvailable as exc:
            out.skip.update({k: f"{exc} (user config: {where})" for k in metrics})
            continue
        spec = weights.declared_spec(m.model, m.pretrained, m.quick_gelu, m.image_size, m.protocol.resize_mode,
                                     m.protocol.interpolation)
        problems = weights.spec_mismatches(spec, weights.carried_spec(source.config)) if source.config else []
        if problems:
            out.failed.update({k: f"refused {source.origin}: " + "; ".join(problems) for k in metrics})
            continue
        entry = {"origin": source.origin, "sha256": weights.sha256(source.checkpoint),
                 "spec_checked": source.config is not None, "spec": {k: list(v) if isinstance(v, tuple) else v
                                                                     for k, v in spec.items()}}
        if source.config is None:
            entry["spec_note"] = "a bare state dict cannot say its activation or preprocessing: the declared spec was used, not checked"
        out.inputs[m.name] = entry
        try:
            net, transform, tokenizer = weights.load(source, m.model, spec, device)
        except weights.Refused as exc:
            out.failed.update({k: str(exc) for k in metrics})
            continue
        if imagenet is None:
            out.skip[metrics[0]] = f"needs the ImageNet-1k val folder (imagenet_val in {where}); nothing is downloaded"
        else:
            started = time.time()
            scores = zeroshot.classify_imagenet(net, tokenizer, transform, imagenet, device, m.protocol.batch_size,
                                                templates=m.protocol.templates, amp=m.protocol.precision == "amp")
            out.metrics[metrics[0]] = accuracy_metric(scores.correct)
            entry["imagenet"] = {"config_key": "imagenet_val", "fingerprint": zeroshot.folder_fingerprint(imagenet)}
            entry["protocol"] = {**m.protocol.model_dump(), **scores.meta, "seconds": round(time.time() - started, 1)}
            out.points.append({"model": m.name, "predictions": predictions.pack(scores.correct),
                               "acc1": round(100 * scores.metrics["acc1"], 4), "acc5": round(100 * scores.metrics["acc5"], 4)})
        for dataset, metric in zip(m.retrieval, metrics[1:]):
            folder = config.retrieval.get(dataset)
            if folder is None:
                out.skip[metric] = f"needs clip_benchmark's wds/{dataset} set (retrieval.{dataset} in {where})"
                continue
            r = zeroshot.retrieve(net, tokenizer, transform, Path(folder), dataset, device, m.protocol.batch_size,
                                  (params.retrieval_k,), amp=m.protocol.precision == "amp")
            out.metrics[metric] = Metric(value=100 * r.metrics[f"image_retrieval_recall@{params.retrieval_k}"],
                                         unit="%", over="examples")
            entry.setdefault("retrieval", {})[dataset] = zeroshot.folder_fingerprint(Path(folder))
    return out


def grid(params: Params, m: ReleasedModel) -> list[tuple[str, dict]]:
    """The declared confounder settings of one model, each one change from its pinned protocol."""
    out = []
    for c in params.confounders:
        if c == "activation":
            out.append((f"activation {'GELU' if m.quick_gelu else 'QuickGELU'}", {"quick_gelu": not m.quick_gelu}))
            continue
        pinned = getattr(m.protocol, c)
        out += [(f"{c} {alt}", {c: alt}) for alt in OTHER[c][pinned]]
    return out


def closes(value: float, published: float, tolerance: float) -> bool:
    return abs(value - published) <= tolerance + 1e-12


def explain(params: Params, metric: str, published: float, tolerance: float, build_dir: Path) -> str:
    """Which declared confounder setting, alone, brings the ImageNet top-1 of `metric`'s model
    within tolerance of the published number; each evaluated setting with its cost."""
    model = next((m for m in params.models if names.in1k_accuracy(m.name) == metric), None)
    if model is None:
        return ""  # retrieval claims: the grid is ImageNet's
    config, _ = _user(build_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    source = weights.resolve(config.weights.get(model.weights_key), model.weights_key, model.model, model.pretrained)
    imagenet = zeroshot.imagenet_root(config.imagenet_val)
    tried, closing, total_s = [], [], 0.0
    for label, setting in grid(params, model):
        if "precision" in setting and device.type != "cuda":
            tried.append(f"{label}: not tried (a CPU evaluates in fp32 only)")
            continue
        started = time.time()
        acc = 100 * float(evaluate(model, source, imagenet, device, **setting).metrics["acc1"])
        cost = time.time() - started
        total_s += cost
        tried.append(f"{label}: {acc:.2f}% ({cost:.0f} s)")
        if closes(acc, published, tolerance):
            closing.append(label)
    head = (f"closes the gap: {', '.join(closing)}" if closing
            else "no single declared setting closes the gap")
    return f"{head} (published {published:g} ± {tolerance:g}; grid {total_s:.0f} s: {'; '.join(tried)})"
