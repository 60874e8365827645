"""Zero-shot evaluation through clip_benchmark, in process (classification and retrieval).

clip_benchmark builds the datasets, the zero-shot classifier and the logits; its own `accuracy`
(with the numpy >= 2.4 fix from runners/upstream/compat.py) and sklearn's balanced accuracy give acc1 /
acc5 / mean per-class recall exactly as its `evaluate` does (a test checks equality). Unlike its
`evaluate`, the per-example correctness is kept, for intervals and paired tests. Always an
explicit task, never AMP on CPU, and never a download: ImageNet is used only from a folder or
shards that exist.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


# clip_benchmark builds its wds sets without shardshuffle; evaluation never shuffles, so the
# warning webdataset prints for every set says nothing here
warnings.filterwarnings("ignore", message=r"WebDataset\(shardshuffle=\.\.\.\) is None")


@dataclass
class Scores:
    metrics: dict[str, float]
    correct: np.ndarray | None = None  # uint8 per example (classification)
    meta: dict = field(default_factory=dict)


def _loader(dataset, batch_size: int) -> torch.utils.data.DataLoader:
    # clip_benchmark's own recipe for wds sets: batch inside the pipeline, no collate
    return torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False,
                                       num_workers=0)


def classify(model, tokenizer, transform, root: Path, name: str, device: torch.device,
             batch_size: int = 250) -> Scores:
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification as zsc
    from sklearn.metrics import balanced_accuracy_score

    from runners.upstream.compat import fix_clip_benchmark_accuracy, quiet_clip_benchmark_bars

    fix_clip_benchmark_accuracy()
    quiet_clip_benchmark_bars()
    if not (root / "test" / "nshards.txt").exists():
        raise FileNotFoundError(f"no clip_benchmark wds set at {root} (needs test/nshards.txt)")
    ds = build_dataset(f"wds/{name}", root=str(root), transform=transform, split="test",
                       download=False, task="zeroshot_classification")
    amp, dev = False, str(device)  # no bf16 autocast on CPU (docs/traps.md); clip_benchmark wants a str
    classifier = zsc.zero_shot_classifier(model, tokenizer, ds.classes, ds.templates, dev, amp=amp)
    logits, target = zsc.run_classification(model, classifier, _loader(ds, batch_size), dev, amp=amp)
    pred = logits.argmax(axis=1)
    metrics = {"acc1": zsc.accuracy(logits, target, topk=(1,))[0],
               "mean_per_class_recall": float(balanced_accuracy_score(target, pred))}
    if len(ds.classes) >= 5:
        metrics["acc5"] = zsc.accuracy(logits, target, topk=(5,))[0]
    correct = (pred == target).numpy().astype(np.uint8)
    return Scores(metrics, correct, {"classes": list(ds.classes), "n_classes": len(ds.classes), "n": int(len(target))})


def retrieve(model, tokenizer, transform, root: Path, name: str, device: torch.device,
             batch_size: int = 250, recall_k: tuple[int, ...] = (1, 5), amp: bool = False) -> Scores:
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_retrieval as zsr

    from runners.upstream.compat import quiet_clip_benchmark_bars

    quiet_clip_benchmark_bars()
    ds = build_dataset(f"wds/{name}", root=str(root), transform=transform, split="test",
                       download=False, task="zeroshot_retrieval")
    metrics = zsr.evaluate(model, _loader(ds, batch_size), tokenizer, device=str(device), amp=amp and device.type == "cuda",
                           recall_k_list=list(recall_k))
    return Scores({k: float(v) for k, v in metrics.items()})


def load_model(model_name: str, checkpoint: Path, image_size: int | None, device: torch.device,
               context_length: int | None = None):
    """An open_clip model from a local checkpoint, loaded with weights_only=True (no pickled code);
    image size and text context as trained when given (no positional embedding is stretched)."""
    import open_clip

    from runners.upstream.compat import fix_syntax_mask_offline
    from runners.model.models import model_config, register_repo_configs

    register_repo_configs()
    if model_config(model_name)["text_cfg"].get("tokenizer_kwargs", {}).get("reduction_mask") == "syntax":
        fix_syntax_mask_offline()  # the class prompts go through the syntax mask too
    kwargs = {"force_image_size": image_size} if image_size else {}
    if context_length:
        kwargs["force_context_length"] = context_length
    model, _, transform = open_clip.create_model_and_transforms(
        model_name, pretrained=str(checkpoint), device=device, weights_only=True, **kwargs)
    model.eval()
    return model, transform, open_clip.get_tokenizer(model_name, context_length=context_length)


TEMPLATE_SETS = ("openai", "one")  # clip_benchmark's imagenet1k prompts (OpenAI's 80) | one prompt
IMAGENET_CLASSES = 1000


def _packaged(name: str) -> dict:
    """clip_benchmark's packaged English classnames / templates (what its builders use by default)."""
    import json

    import clip_benchmark.datasets.builder as builder

    return json.loads((Path(builder.__file__).parent / f"en_{name}.json").read_text())


def imagenet_templates(which: str) -> list[str]:
    if which == "one":
        return ["a photo of a {c}."]
    return list(_packaged("zeroshot_classification_templates")["imagenet1k"])


def imagenet_loader(root: Path, transform, batch_size: int):
    """(classes, loader, layout) of ImageNet-1k val: clip_benchmark's wds/imagenet1k shards
    (root/test/nshards.txt, classes from the set's classnames.txt) or a torchvision folder of the 1000
    synset folders (classes: clip_benchmark's imagenet1k names). Never a builder that downloads."""
    from clip_benchmark.datasets.builder import build_dataset
    from torchvision.datasets import ImageFolder

    if (root / "test" / "nshards.txt").exists():
        ds = build_dataset("wds/imagenet1k", root=str(root), transform=transform, split="test",
                           download=False, task="zeroshot_classification")
        return list(ds.classes), _loader(ds, batch_size), "wds"
    folders = [d for d in root.iterdir() if d.is_dir()]
    if len(folders) != IMAGENET_CLASSES:  # ImageFolder numbers classes by the folders present
        raise ValueError(f"{root}: {len(folders)} class folders; ImageNet-1k val needs all {IMAGENET_CLASSES} "
                         "synset folders (or clip_benchmark's wds/imagenet1k shards)")
    ds = ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    return list(_packaged("classnames")["imagenet1k"]), loader, "folder"


def text_digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def classify_imagenet(model, tokenizer, transform, root: Path, device: torch.device, batch_size: int = 250,
                      templates: str = "openai", amp: bool | None = None) -> Scores:
    """Zero-shot ImageNet-1k through clip_benchmark's classifier and loop; the class names and
    templates used are kept (by hash) in meta. amp: clip_benchmark's autocast (default: on CUDA)."""
    from clip_benchmark.metrics import zeroshot_classification as zsc

    from runners.upstream.compat import fix_clip_benchmark_accuracy, quiet_clip_benchmark_bars

    fix_clip_benchmark_accuracy()
    quiet_clip_benchmark_bars()
    assert root.is_dir(), "never reach a clip_benchmark imagenet builder without a root"
    classes, loader, layout = imagenet_loader(root, transform, batch_size)
    prompts = imagenet_templates(templates)
    amp = device.type == "cuda" if amp is None else (amp and device.type == "cuda")  # never autocast on CPU
    dev = str(device)
    classifier = zsc.zero_shot_classifier(model, tokenizer, classes, prompts, dev, amp=amp)
    logits, target = zsc.run_classification(model, classifier, loader, dev, amp=amp)
    acc1, acc5 = zsc.accuracy(logits, target, topk=(1, 5))
    correct = (logits.argmax(axis=1) == target).numpy().astype(np.uint8)
    meta = {"n": int(len(target)), "n_classes": len(classes), "layout": layout, "templates": templates, "templates_sha256": text_digest(prompts),
            "n_templates": len(prompts), "classnames_sha256": text_digest(classes), "amp": amp}
    return Scores({"acc1": acc1, "acc5": acc5}, correct, meta)


def folder_fingerprint(root: Path) -> str:
    """sha256 (16 hex) over the relative names and sizes of every file under root: identifies an
    eval folder in a record without its path (contents are not read: ImageNet val is 6.4 GB)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def imagenet_root(path: str | None) -> Path | None:
    """A configured ImageNet val folder, or None: clip_benchmark's builder downloads when the root
    is missing, so it is never called without an existing one."""
    if path and Path(path).is_dir():
        return Path(path)
    return None
