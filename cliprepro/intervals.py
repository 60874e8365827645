"""Intervals over seeds that cover at their stated level, and the probability that a gate passes.

A trained measurement (a zero-shot gain, a contrast) varies with the seed (init, data order) and
with the evaluation sample. One seed's bootstrap over examples sees only the second, so its
nominal 95% interval covers the true effect far less often (docs/verdicts.md has the simulation).
The rule used for every measurement over seeds:

    value ± t(df, 0.975) · sqrt(sd² / n + eval_se²)

- `sd`, the spread of a one-seed value, is estimated: from calibration runs (their per-seed
  values, `df` degrees of freedom) pooled with this run's own per-seed values (n − 1 more), so a
  seed that failed to train in this run widens its own interval;
- `eval_se` is the evaluation-sampling standard error of the seed mean (the runner's, over
  examples, paired across seeds);
- the t quantile carries the uncertainty of the estimated sd. With no spread known and one seed,
  no interval covers: the interval is unbounded and the verdict can only be inconclusive.

Pure: numbers in, numbers out; scipy's distributions, no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist, variance

CONFIDENCE = 0.95
Z95 = 1.959964  # the two-sided 95% normal quantile, written once (NormalDist().inv_cdf(0.975))
SPREAD_UPPER = 0.95  # one-sided level of the spread's upper confidence bound in pass probabilities


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    from scipy.stats import t

    return float(t.ppf(p, df))


@lru_cache(maxsize=256)
def sd_upper(sd: float, df: float, level: float = SPREAD_UPPER) -> float:
    """One-sided upper confidence bound of a standard deviation estimated with df degrees of
    freedom (chi-square); a spread declared without df is taken as known."""
    if math.isinf(df):
        return sd
    from scipy.stats import chi2

    return sd * math.sqrt(df / float(chi2.ppf(1 - level, df)))


@dataclass(frozen=True)
class SeedInterval:
    lo: float
    hi: float
    sd: float | None  # the pooled one-seed spread used
    df: float  # its degrees of freedom (0: none known; inf: declared as known)
    rule: str  # what was combined, for the verdict reason


def pooled_spread(seed_sd: float | None, seed_df: float | None,
                  run_samples: list[float]) -> tuple[float | None, float]:
    """The calibrated one-seed spread pooled with this run's own per-seed values."""
    extra = (len(run_samples) - 1) * variance(run_samples) if len(run_samples) >= 2 else 0.0
    return _pool(seed_sd, seed_df, extra, max(len(run_samples) - 1, 0))


def pooled_sd(groups: list[list[float]]) -> tuple[float | None, int]:
    """One SD pooled over groups of repeated measurements of different quantities, each about its
    own mean: sqrt(sum of squares / sum of (n_i - 1)), and those degrees of freedom."""
    ss = sum((len(g) - 1) * variance(g) for g in groups if len(g) >= 2)
    df = sum(len(g) - 1 for g in groups if len(g) >= 2)
    return (math.sqrt(ss / df) if df else None), df


def _pool(sd: float | None, df: float | None, extra_ss: float, extra_df: float) -> tuple[float | None, float]:
    """`sd` (df degrees of freedom; None: unknown) pooled with a sum of squares over extra_df more;
    a spread declared as known (df None or inf) has nothing to pool with."""
    if sd is not None and (df is None or math.isinf(df)):
        return sd, math.inf
    ss, total = (df * sd ** 2, float(df)) if sd is not None and df is not None else (0.0, 0.0)
    ss, total = ss + extra_ss, total + extra_df
    return (math.sqrt(ss / total), total) if total > 0 else (None, 0.0)


def seed_interval(value: float, n: int, eval_se: float, seed_sd: float | None, seed_df: float | None,
                  run_samples: list[float], confidence: float = CONFIDENCE) -> SeedInterval:
    sd, df = pooled_spread(seed_sd, seed_df, run_samples)
    if sd is None:
        return SeedInterval(-math.inf, math.inf, None, 0.0,
                            f"{n} seed, no seed spread known: no interval covers")
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(sd ** 2 / n + eval_se ** 2)
    source = "declared" if math.isinf(df) else f"df {df:g}"
    return SeedInterval(value - half, value + half, sd, df,
                        f"{n} seed(s), seed spread {sd:.3g} ({source}) with evaluation s.e. {eval_se:.3g}")


@dataclass(frozen=True)
class PassProbability:
    honest_pass: float  # P(an honest rerun's verdict is reproduced)
    control_fails: float  # P(the negative control's verdict is not_reproduced)
    how: str
    honest_z: float = 0.0  # the margins in standard deviations (±inf when deterministic): they
    control_z: float = 0.0  # still order thresholds where both probabilities round to 1


@dataclass(frozen=True)
class ControlModel:
    """The negative control's value as its calibration run measured it. Over seeds, `sd` is the
    spread of its per-seed values (0: deterministic, e.g. a fine-tune stage of 0 epochs whose
    gain is exactly 0 on every example) and `eval_se` its evaluation s.e. Without one, the control
    is taken to sit at the null with the honest run's spread."""
    value: float
    sd: float = 0.0
    eval_se: float = 0.0


def pass_probability_seeds(effect: float, null: float, threshold: float, n: int, sd: float, df: float,
                           eval_se: float, upward: bool = True,
                           control: ControlModel | None = None) -> PassProbability:
    """A gate over seeds: the rerun's value ~ N(effect, sd_U²/n + eval_se²) with sd_U the spread's
    upper bound; it passes when its lower bound (value − half) clears the threshold. The control
    fails when its upper bound stays short of the threshold; its interval pools the calibrated
    spread with its own per-seed values, as the verdict will."""
    sd_u = sd_upper(sd, df)
    spread = math.sqrt(sd_u ** 2 / n + eval_se ** 2)
    half = seed_interval(0.0, n, eval_se, sd, df, []).hi  # the half-width the verdict will use
    how = f"n={n} seeds, spread upper bound {sd_u:.3g} (estimate {sd:.3g}, df {df:g})"
    if control is None:
        return _one_sided(effect, null, threshold, half, half, spread, upward, how)
    # the verdict pools the calibrated spread with the control's own seeds
    c_sd, c_df = _pool(sd, df, (n - 1) * control.sd ** 2, n - 1)
    assert c_sd is not None
    c_half = t_quantile(0.5 + CONFIDENCE / 2, c_df) * math.sqrt(c_sd ** 2 / n + control.eval_se ** 2)
    c_spread = math.sqrt(sd_upper(control.sd, max(n - 1, 1)) ** 2 / n + control.eval_se ** 2) if control.sd else \
        control.eval_se
    honest = _one_sided(effect, null, threshold, half, half, spread, upward, how)
    ctl = _one_sided(control.value, control.value, threshold, c_half, c_half, c_spread, upward, how)
    return PassProbability(honest.honest_pass, ctl.control_fails,
                           how + (", control deterministic" if c_spread == 0 else ""), honest.honest_z, ctl.control_z)


def pass_probability_runs(effect: float, null: float, threshold: float, run_sd: float, runs: int,
                          lower_half: float, upper_half: float, upward: bool = True,
                          ratio: bool = False) -> PassProbability:
    """A gate judged by a within-run interval (rounds): the rerun's value varies run to run with
    the calibration runs' spread (its upper bound, df = runs − 1); the interval's half-widths are
    those the calibration runs reached. For a ratio (null 1) the noise is taken as multiplicative:
    the spread and half-widths are relative to the value, so the control near 1 varies by the same
    fraction of itself as the effect does (computed on the log scale)."""
    sd_u = sd_upper(run_sd, runs - 1)
    how = f"run-to-run spread upper bound {sd_u:.3g} (estimate {run_sd:.3g}, {runs} runs)"
    if ratio and effect > 0 and threshold > 0 and null > 0 and effect > lower_half:
        rel = sd_u / effect
        lo_l = math.log(effect) - math.log(effect - lower_half)
        hi_l = math.log(effect + upper_half) - math.log(effect)
        return _one_sided(math.log(effect), math.log(null), math.log(threshold), lo_l, hi_l, rel, upward,
                          how + ", relative (log scale)")
    return _one_sided(effect, null, threshold, lower_half, upper_half, sd_u, upward, how)


def _one_sided(effect: float, null: float, thr: float, lower_half: float, upper_half: float,
               spread: float, upward: bool, how: str) -> PassProbability:
    sign = 1.0 if upward else -1.0
    # the bound the judge reads (claims._one_sided): upward, a pass needs value − lower_half ≥ thr
    # and the control fails when value + upper_half < thr; downward, the other half each way
    pass_half, fail_half = (lower_half, upper_half) if upward else (upper_half, lower_half)
    pass_margin = sign * (effect - thr) - pass_half
    fail_margin = sign * (thr - null) - fail_half
    if spread == 0:
        inf = math.inf
        return PassProbability(float(pass_margin >= 0), float(fail_margin > 0), how,
                               inf if pass_margin >= 0 else -inf, inf if fail_margin > 0 else -inf)
    z = NormalDist()
    hz, cz = pass_margin / spread, fail_margin / spread
    return PassProbability(z.cdf(hz), z.cdf(cz), how, hz, cz)


def best_kept_fraction(probability, grid_step: float = 0.01) -> tuple[float, PassProbability]:
    """The kept fraction (threshold = null + kept · effect) that maximises the smaller margin of
    P(pass) and P(control fails), in standard deviations (so it still chooses where both round
    to 1); among equal best (deterministic plateaus), the middle one. `probability(kept)` gives both."""
    scored = []
    for i in range(1, round(1 / grid_step)):
        kept = round(i * grid_step, 4)
        p = probability(kept)
        scored.append((min(p.honest_z, p.control_z), kept, p))
    top = max(s for s, _, _ in scored)
    best = [(k, p) for s, k, p in scored if s >= top - 1e-9 or (math.isinf(top) and s == top)]
    return best[len(best) // 2]


def run_pass_probability(gates: list[float]) -> float:
    """P(every gate passes) as the product: a lower bound when gates are positively correlated
    (gates of one suite share its run), exact when independent."""
    return math.prod(gates) if gates else 1.0

