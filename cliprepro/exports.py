"""Every zero-shot evaluation in accepted records as clip_benchmark result JSON: the files its own
`clip_benchmark build` reads into one CSV (the format clip_benchmark's `eval` writes: dataset,
model, pretrained, task, metrics as fractions, language). Pure: records in, {file name: text} out.

A record's evaluation points carry, per (stage, seed), `acc1_<attribute>` (%) for each proxy
classification set and, where run, `image|text_retrieval_recall_at_K` (%) for the retrieval set.
"""
from __future__ import annotations

import json
import re

from cliprepro.record import Record

ACC = re.compile(r"^acc1_(?!mean$)([a-z]+)$")
RECALL = re.compile(r"^(image|text)_retrieval_recall_at_(\d+)$")


def _dataset(record: Record, name: str) -> str:
    return f"cliprepro_{record.scale}/{name}"  # never ImageNet's name: these are the proxy sets


def clip_benchmark_results(records: list[tuple[str, Record]]) -> dict[str, str]:
    files: dict[str, str] = {}
    for rid, record in sorted(records, key=lambda x: x[0]):
        models = {s.get("name"): s.get("model") for s in record.config.get("params", {}).get("stages", [])
                  if isinstance(s, dict)}
        for point in record.points:
            if "stage" not in point or "acc1_mean" not in point:
                continue
            model = models.get(point["stage"], "unknown")
            pretrained = f"cliprepro:{record.suite}/{rid}/{point['stage']}/seed{point.get('seed')}"
            base = {"model": model, "pretrained": pretrained, "language": "en"}
            recalls = {}
            for key, value in sorted(point.items()):
                if (m := ACC.match(key)) and isinstance(value, (int, float)):
                    files[f"{record.suite}__{rid}__{point['stage']}__seed{point.get('seed')}__{m.group(1)}.json"] = \
                        json.dumps({**base, "dataset": _dataset(record, m.group(1)),
                                    "task": "zeroshot_classification", "metrics": {"acc1": value / 100}},
                                   sort_keys=True) + "\n"
                elif (m := RECALL.match(key)) and isinstance(value, (int, float)):
                    recalls[f"{m.group(1)}_retrieval_recall@{m.group(2)}"] = value / 100
            if recalls:
                files[f"{record.suite}__{rid}__{point['stage']}__seed{point.get('seed')}__retrieval.json"] = \
                    json.dumps({**base, "dataset": _dataset(record, "retrieval"), "task": "zeroshot_retrieval",
                                "metrics": recalls}, sort_keys=True) + "\n"
    return files
