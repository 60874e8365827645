"""Does an interval over seeds cover at its stated level? A simulation, including calibration.

    python -m cliprepro.coverage            # closed form (normal evaluation noise), seconds
    python -m cliprepro.coverage --examples # 500 Bernoulli examples per seed, minutes

Model of one trained measurement (a paired zero-shot gain, pp): seed i has a true gain
g_i = mu + sd * z_i, and in the failure scenario a seed fails to train with probability p_fail,
losing `fail_shift`; the measured gain adds evaluation noise of one seed's eval set. The target is
the mean of g over seeds (failures included). Calibration: k one-seed runs give the spread
estimate (df = k - 1) the rule uses. Rules:

- `seed_rule` (schema 2, cliprepro.intervals): value ± t(df) · sqrt(sd² / n + eval_se²), the
  calibrated spread pooled with the run's own seeds;
- `schema1_rule`: the bootstrap over seeds, then over examples, that schema 1 used (its one-seed
  interval covers evaluation sampling only).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from cliprepro.intervals import seed_interval


@dataclass(frozen=True)
class Scenario:
    name: str
    sd: float  # seed-to-seed spread of the true gain, pp
    p_fail: float = 0.0  # probability that a seed fails to train
    fail_shift: float = 0.0  # what a failed seed loses, pp
    examples: int = 500  # evaluation examples per seed
    mu: float = 20.0

    @property
    def eval_se(self) -> float:
        """s.e. of one seed's paired gain: two independent Bernoulli(0.5) per example, in pp."""
        return 100 * math.sqrt(0.5 / self.examples)

    @property
    def target(self) -> float:
        return self.mu + self.p_fail * self.fail_shift


SCENARIOS = (
    Scenario("clipa_l16 spread", sd=5.45),
    Scenario("a seed fails to train", sd=1.5, p_fail=0.1, fail_shift=-12.0),
)


def _true_gains(s: Scenario, rng: np.random.Generator, size) -> np.ndarray:
    g = s.mu + s.sd * rng.standard_normal(size)
    return g + s.fail_shift * (rng.random(size) < s.p_fail)


def _measure(s: Scenario, g: np.ndarray, rng: np.random.Generator, examples: bool):
    """Per-seed measured gains and their per-example differences (None in closed form)."""
    if not examples:
        return g + s.eval_se * rng.standard_normal(g.shape), None
    p0 = 0.5
    p1 = np.clip(p0 + g / 100, 0, 1)
    a = rng.random((*g.shape, s.examples)) < p0
    b = rng.random((*g.shape, s.examples)) < p1[..., None]
    diffs = 100.0 * (b.astype(np.float64) - a)
    return diffs.mean(-1), diffs


def seed_rule(values: np.ndarray, diffs, eval_se: float, calibration: np.ndarray) -> tuple[float, float]:
    n = len(values)
    if diffs is not None:  # the runner's s.e. of the seed mean, from the examples
        se = float(np.sqrt(sum(d.var(ddof=1) / d.size for d in diffs)) / n)
    else:
        se = eval_se / math.sqrt(n)
    iv = seed_interval(float(values.mean()), n, se, float(np.std(calibration, ddof=1)), len(calibration) - 1,
                       [float(v) for v in values])
    return iv.lo, iv.hi


def schema1_rule(values: np.ndarray, diffs, eval_se: float, calibration: np.ndarray,
                 rng: np.random.Generator, reps: int = 400) -> tuple[float, float]:
    n = len(values)
    picked = rng.integers(n, size=(reps, n))
    if diffs is None:  # examples resampled: normal noise of one seed's s.e. around its value
        means = (values[picked] + eval_se * rng.standard_normal((reps, n))).mean(1)
    else:
        m = diffs.shape[-1]
        means = np.array([np.mean([diffs[s][rng.integers(m, size=m)].mean() for s in row]) for row in picked])
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def coverage(rule: str, scenario: Scenario, k: int, n: int, sims: int = 2000, seed: int = 0,
             examples: bool = False) -> float:
    """Fraction of simulated runs whose interval covers the target (calibration redone per run)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sims):
        calibration, _ = _measure(scenario, _true_gains(scenario, rng, k), rng, False)
        values, diffs = _measure(scenario, _true_gains(scenario, rng, n), rng, examples)
        if rule == "seed_rule":
            lo, hi = seed_rule(values, diffs, scenario.eval_se, calibration)
        else:
            lo, hi = schema1_rule(values, diffs, scenario.eval_se, calibration, rng)
        hits += lo <= scenario.target <= hi
    return hits / sims


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", action="store_true", help="Bernoulli examples instead of normal noise")
    p.add_argument("--sims", type=int, default=2000)
    args = p.parse_args(argv)
    print(f"coverage of the nominal 95% interval ({args.sims} simulated runs per cell; "
          f"{'Bernoulli examples' if args.examples else 'closed form'})")
    print(f"{'scenario':<24}{'k':>3}  {'rule':<13}" + "".join(f"{f'n={n}':>8}" for n in (1, 2, 3, 5)))
    for s in SCENARIOS:
        for k in (3, 5):
            for rule in ("schema1_rule", "seed_rule"):
                cells = [coverage(rule, s, k, n, args.sims, examples=args.examples) for n in (1, 2, 3, 5)]
                print(f"{s.name:<24}{k:>3}  {rule:<13}" + "".join(f"{c:>8.3f}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
