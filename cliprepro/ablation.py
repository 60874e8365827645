"""An ablation table as the papers print it (row, what it adds, accuracy, change over the row
before, training time saved), rendered from a train record alone (pure).

The rows come from the record's own params (`ablation`, runners.schema.ablation); every number is
a record metric. Intervals are the ones a direction claim judges: per-seed values widened by their
own spread (cliprepro.intervals.seed_interval, 95%), so with few seeds they are wide, as they should be.
"""
from __future__ import annotations

import math

from tabulate import tabulate

from cliprepro.board import fmt
from cliprepro.intervals import seed_interval
from cliprepro.record import Metric, Record
from runners.schema import metric_names as names


def _with_interval(m: Metric | None, unit: str) -> str:
    if m is None or m.value is None or math.isnan(m.value):
        return "—"
    if m.over != "seeds":
        return f"{fmt(m.value)} {unit}"
    iv = seed_interval(m.value, m.n, m.eval_se or 0.0, None, None, list(m.samples) if len(m.samples) == m.n else [])
    bounds = f"[{fmt(iv.lo)}, {fmt(iv.hi)}]" if math.isfinite(iv.lo) else "[no interval: 1 seed]"
    return f"{fmt(m.value)} {bounds} {unit} (n={m.n})"


def table(record: Record) -> str:
    """'' when the record has no ablation rows."""
    rows = record.config.get("params", {}).get("ablation", [])
    if not rows:
        return ""
    m = record.metrics
    body = []
    for i, row in enumerate(rows):
        stage = row["stage"]
        rate = m.get(names.train_rate("step_samples_per_s", stage))
        body.append([row["name"], row["adds"], _with_interval(m.get(names.stage_accuracy(stage, "mean")), "%"),
                     "—" if i == 0 else _with_interval(m.get(names.gain(row["name"])), "pp"),
                     "—" if rate is None else fmt(rate.value),
                     "—" if i == 0 else _with_interval(m.get(names.train_time_saved(row["name"])), "%")])
    return tabulate(body, ["row", "adds", "zero-shot acc1, mean", "Δ over the row before (paired)",
                           "step samples/s", "step time saved"], tablefmt="github")
