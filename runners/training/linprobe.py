"""Linear probe of an image tower on the proxy's attribute sets, per example (for paired tests).

clip_benchmark's Featurizer gives the features (its linear-probe recipe: the normalised image
embedding); its own linear-probe trainer needs CUDA, so the classifier is sklearn's
LogisticRegression, deterministic on a CPU. Each attribute's eval set is split in halves by
position (even examples fit, odd examples score): the same split for every stage, so stages are
paired per test example. What it measures: how linearly the tower's features separate the
attributes before (or without) any CLIP training, e.g. MIM init vs a copied teacher vs random.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

C = 1.0  # sklearn's default inverse regularisation; one setting for every stage
MAX_ITER = 2000


def features(model, transform, root: Path, name: str, device: torch.device, batch_size: int = 250):
    """(features [N, D], labels [N]) of one clip_benchmark wds set, in the set's order."""
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics.linear_probe import Featurizer

    from runners.zeroshot import _loader

    ds = build_dataset(f"wds/{name}", root=str(root), transform=transform, split="test",
                       download=False, task="linear_probe")
    featurizer = Featurizer(model).eval()
    xs, ys = [], []
    with torch.no_grad():
        for images, labels in _loader(ds, batch_size):
            xs.append(featurizer(images.to(device)).float().cpu().numpy())
            ys.append(np.asarray(labels))
    return np.concatenate(xs), np.concatenate(ys)


def held_out_correct(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fit on the even examples, 0/1 per odd example (a class absent from the fit half is never predicted)."""
    from sklearn.linear_model import LogisticRegression

    fit, test = slice(0, None, 2), slice(1, None, 2)
    if len(np.unique(y[fit])) < 2:  # one class only: the constant guess
        return (y[test] == y[fit][0]).astype(np.uint8)
    clf = LogisticRegression(C=C, max_iter=MAX_ITER).fit(x[fit], y[fit])
    return (clf.predict(x[test]) == y[test]).astype(np.uint8)


def probe(model_name: str, ckpt: Path, sets: dict[str, Path], device: torch.device) -> dict:
    """Per attribute set: held-out acc1 (%), and the per-example outcomes of all sets, concatenated."""
    from runners.zeroshot import load_model

    model, transform, _ = load_model(model_name, ckpt, None, device)
    per_set, scores = [], {}
    for name, root in sets.items():
        correct = held_out_correct(*features(model, transform, root, name, device))
        scores[f"probe_acc1_{name}"] = 100 * float(correct.mean())
        per_set.append(correct)
    correct = np.concatenate(per_set)
    scores["probe_acc1_mean"] = 100 * float(correct.mean())
    return {"scores": scores, "_correct": correct}


def probe_to(params, stage, ckpt: Path, source, out: Path) -> int:
    """probe(), in its own process (runners.training.stage.in_process), written to `out`."""
    from cliprepro.record import atomic_write_text
    from cliprepro.predictions import pack

    got = probe(stage.model, ckpt, dict(source.eval_sets), torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    atomic_write_text(out, json.dumps({"scores": got["scores"], "correct": pack(got["_correct"])}))
    return 0
