"""What a text mask keeps: content words per caption, measured with open_clip's own tokenizer.

A caption's content words are its attribute values (size, colour, shape, position words). Each
caption is tokenized at `context_length` with the mask (open_clip's `reduction_mask`), the kept
tokens decoded, and the content words among them counted; the same for the reference mask. The
metric is the paired mean difference (words per caption) with its interval over captions (deterministic:
judged as an exact value).
Random masks draw from torch's and Python's generators, seeded here, so a run is repeatable.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from cliprepro.record import Metric
from runners.upstream.openclip_main import REDUCTION_MASK
from runners.schema import metric_names as names
from runners.schema.output import paired_gain
from runners.schema.train_params import TextCheck
from runners.training.proxydata import ATTRIBUTES


def content_words(labels: dict[str, int]) -> list[str]:
    return [w for attribute, index in labels.items() for w in ATTRIBUTES[attribute][index].split()]


def kept_words(captions: list[str], mask: str, context_length: int) -> list[set[str]]:
    """The words left in each caption after tokenizing it at `context_length` with `mask`."""
    from open_clip.tokenizer import SimpleTokenizer

    from runners.upstream.compat import fix_syntax_mask_offline

    if mask == "syntax":
        fix_syntax_mask_offline()
    tokenizer = SimpleTokenizer(context_length=context_length, reduction_mask=REDUCTION_MASK[mask])
    torch.manual_seed(0)
    random.seed(0)
    ids = tokenizer(captions)
    special = {tokenizer.sot_token_id, tokenizer.eot_token_id, 0}
    return [set(tokenizer.decode([int(t) for t in row if int(t) not in special]).split()) for row in ids]


def count_kept(captions: list[str], labels: list[dict[str, int]], mask: str, context_length: int) -> np.ndarray:
    kept = kept_words(captions, mask, context_length)
    return np.array([sum(w in k for w in content_words(lab)) for k, lab in zip(kept, labels)], dtype=np.float64)


def measure(checks: list[TextCheck], data: Path) -> dict[str, Metric]:
    meta = json.loads((data / "eval" / "labels.json").read_text())
    metrics = {}
    for check in checks:
        rows = [i for i, first in enumerate(meta["content_first"])
                if check.captions == "all" or first == (check.captions == "content_first")]
        captions = [meta["captions"][i] for i in rows]
        labels = [meta["labels"][i] for i in rows]
        kept = count_kept(captions, labels, check.mask, check.context_length)
        ref = count_kept(captions, labels, check.reference, check.context_length)
        metrics[names.content_words(check.name)] = paired_gain([kept - ref], unit="words").model_copy(
            update={"over": "examples", "samples": []})
        for mask, values in ((check.mask, kept), (check.reference, ref)):
            metrics[names.content_words_kept(check.name, mask)] = Metric(
                value=float(values.mean()), lo=float(values.mean()), hi=float(values.mean()), n=len(values),
                unit="words", over="exact")
    return metrics
