"""One claim's measurements pooled over records (pure): the leaderboard judges the pool, not a vote
of the records' verdicts, so a record submitted twice (same content, same id) counts once and more
records of one claim narrow its interval.

How a pool is formed depends on what the metric's n counts (`Metric.over`):
  exact    deterministic counts: one value when every record agrees; a disagreement is no pool
  rounds   per-round samples of a timing are concatenated; median and order-statistic interval
           (a timing disturbed in every sweep is left out when undisturbed ones exist)
  seeds    per-seed values are concatenated; mean, with the evaluation s.e. of that mean
  other    (one value, no samples) no pool beyond a single record
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cliprepro.intervals import Z95
from cliprepro.record import Metric
from cliprepro.stats import median_interval


@dataclass(frozen=True)
class Pooled:
    metric: Metric | None  # None: the measurements cannot be pooled (see why)
    records: int
    why: str = ""  # why there is no pool (metric None), else what was left out of it


def pool_metrics(metrics: dict[str, Metric]) -> Pooled:
    """Pool one metric measured by several records ({record id: metric}); ids are distinct, so a
    resubmitted record (same id) is already one entry."""
    found = {rid: m for rid, m in sorted(metrics.items()) if m.value is not None}
    if not found:
        return Pooled(None, 0, "no record measured it")
    if len(found) == 1:
        return Pooled(next(iter(found.values())), 1)
    kinds = {m.over for m in found.values()}
    if len(kinds) != 1:
        return Pooled(None, len(found), f"records measure it differently ({', '.join(sorted(map(str, kinds)))})")
    kind = kinds.pop()
    ms = list(found.values())
    if kind == "exact":
        values = sorted({m.value for m in ms})
        if len(values) > 1:
            return Pooled(None, len(ms), f"exact counts disagree: {', '.join(f'{v:g}' for v in values)}")
        return Pooled(ms[-1], len(ms))
    if kind == "rounds" and all(m.samples for m in ms):
        # a timing disturbed in every sweep joins no pool that has undisturbed ones; a pool of only
        # disturbed ones keeps the mark (its verdict: inconclusive)
        clean = [m for m in ms if not m.timing_disturbed]
        left_out = len(ms) - len(clean) if clean else 0
        ms = clean or ms
        samples = [s for m in ms for s in m.samples]
        med, lo, hi, conf = median_interval(samples)
        waits = [m.data_wait_fraction for m in ms if m.data_wait_fraction is not None]
        disturbed = [m.timing_disturbed for m in ms if m.timing_disturbed]
        return Pooled(Metric(value=med, lo=lo, hi=hi, n=len(samples), confidence=round(conf, 4), unit=ms[0].unit,
                             samples=samples, over="rounds", data_wait_fraction=max(waits) if waits else None,
                             timing_disturbed="; ".join(disturbed) or None),
                      len(ms), f"left out {left_out} record(s) whose timing was disturbed" if left_out else "")
    if kind == "seeds" and all(len(m.samples) == m.n for m in ms):
        samples = [s for m in ms for s in m.samples]
        n = len(samples)
        value = sum(samples) / n
        se = math.sqrt(sum((m.n * (m.eval_se or 0.0)) ** 2 for m in ms)) / n  # s.e. of the mean of all seeds
        return Pooled(Metric(value=value, lo=value - Z95 * se, hi=value + Z95 * se, n=n, confidence=0.95,
                             unit=ms[0].unit, samples=samples, over="seeds", eval_se=round(se, 6)), len(ms))
    return Pooled(None, len(ms), f"{kind or 'single-value'} measurements without per-seed or per-round samples "
                                 "do not pool; each record is shown on its suite page")
