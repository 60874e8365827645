"""The names of the measurements each runner makes, from its parameters alone (pure, no torch).

The runners name every metric they write with these functions, and `declared(runner, params,
scale)` lists them all, so `cliprepro validate` can check that every expected entry's `metric`
is one the suite's params will produce, at every scale (a typo in a gpu-scale finding fails on a
CPU, in CI, not first on a GPU).
"""
from __future__ import annotations

from runners.schema.paper import PaperRecipe
from runners.schema.params import ArchitectureParams, ThroughputParams
from runners.schema.train_params import TrainParams
from runners.schema.released import ReleasedParams
from runners.schema.deepspeed import DeepSpeedRecipe

# throughput


def speed(kind: str, mode: str, arm: str) -> str:
    """kind: ms_per_step, img_per_s, speedup or time_saved_pct."""
    return f"{kind}_{mode}_{arm}"


def tokens(check: str) -> str:
    return f"tokens_{check}"


def a100_days(schedule: str) -> str:
    return f"a100_days_{schedule}"


def a100_gpu_hours(schedule: str) -> str:
    return f"a100_gpu_hours_{schedule}"


def target_days(target: str, schedule: str) -> str:
    """Days of a schedule on its target class: a100_days_<s> or tpu_v3_core_days_<s>."""
    return a100_days(schedule) if target == "a100" else f"{target}_days_{schedule}"


def target_hours(target: str, schedule: str) -> str:
    return a100_gpu_hours(schedule) if target == "a100" else f"{target}_hours_{schedule}"


def usd(schedule: str) -> str:
    return f"usd_{schedule}"


# architecture


def mask_label(ratio: float) -> str:
    return f"mask{round(ratio * 100)}"


def flops_ratio(name: str, ratio: float) -> str:
    return f"flops_ratio_{name}_{mask_label(ratio)}"


def text_share(name: str) -> str:
    return f"text_pct_of_image_{name}"


def param_count(part: str, name: str) -> str:
    return f"params_{part}_M_{name}"


PARAM_PARTS = ("vision", "text", "total")

# train

RETRIEVAL_RECALL_K = (1, 5)


def stage_accuracy(stage: str, what: str) -> str:
    """what: an attribute, or `mean` (all attributes, with its evaluation s.e.)."""
    return f"acc1_{stage}_{what}"


def stage_retrieval(key: str, stage: str) -> str:
    """clip_benchmark's retrieval result key (image_retrieval_recall@5) for one stage."""
    return f"{key.replace('@', '_at_')}_{stage}"


def gain(name: str) -> str:
    return f"gain_{name}"


def contrast(name: str) -> str:
    return f"contrast_{name}"


def probe_accuracy(stage: str) -> str:
    """Linear-probe acc1 of a stage's image tower, mean over the eval attributes' test halves."""
    return f"probe_acc1_{stage}"


def probe_gain(name: str) -> str:
    return f"probe_gain_{name}"


def best_over(best: str, other: str) -> str:
    return f"gain_{best}_over_{other}"


def best_of(name: str) -> str:
    return f"best_of_{name}"


def soup_over_mean(soup: str) -> str:
    return f"soup_over_mean_{soup}"


def soup_over_best(soup: str) -> str:
    return f"soup_over_best_{soup}"


def soup_gain_versus(soup: str, versus: str) -> str:
    return f"soup_over_mean_{soup}_minus_{versus}"


def speedup_to_target(name: str) -> str:
    return f"speedup_to_target_{name}"


def step_s_to_target(name: str, side: str) -> str:
    """side: arm | baseline."""
    return f"step_s_to_target_{name}_{side}"


def content_words(check: str) -> str:
    return f"content_words_{check}"


def content_words_kept(check: str, mask: str) -> str:
    return f"content_words_kept_{check}_{mask}"


TRAIN_RATES = ("train_samples_per_s", "step_samples_per_s", "data_wait_pct", "train_vs_bare_step")


def train_rate(kind: str, stage: str) -> str:
    """kind (TRAIN_RATES): end-to-end and step-only training samples/s (data wait excluded), the
    % of wall time waiting for data, and the end-to-end rate over the same model's bare step."""
    return f"{kind}_{stage}"


def in1k_accuracy(stage: str) -> str:
    return f"in1k_acc1_{stage}"


def in1k_gain(name: str) -> str:
    return f"in1k_gain_{name}"


def released_retrieval(dataset: str, k: int, model: str) -> str:
    """clip_benchmark's image_retrieval_recall@k (text -> image) on a retrieval set, for one model."""
    return f"{dataset}_image_retrieval_recall_at_{k}_{model}"


def _throughput(p: ThroughputParams) -> set[str]:
    names = {tokens(c.name) for c in p.token_checks}
    for mode in p.modes:
        for arm in p.arms:
            names |= {speed("ms_per_step", mode, arm.name), speed("img_per_s", mode, arm.name)}
            if p.baseline_of(arm) is not None:
                names |= {speed("speedup", mode, arm.name), speed("time_saved_pct", mode, arm.name)}
    if "step" in p.modes:
        names |= {target_days(s.target, s.name) for s in p.schedules} | {target_hours(s.target, s.name) for s in p.schedules}
        names |= {usd(s.name) for s in p.schedules if s.usd_per_gpu_hour is not None}
    return names


def _architecture(p: ArchitectureParams) -> set[str]:
    names = set()
    for spec in p.flops:
        names |= {text_share(spec.name)} | {flops_ratio(spec.name, r) for r in spec.patch_dropouts}
    for spec in p.param_counts:
        names |= {param_count(part, spec.name) for part in PARAM_PARTS}
    return names


def _train(p: TrainParams) -> set[str]:
    """Own data's eval sets are the user's, unknown here: their per-set accuracies are shown, not
    declared; the mean over them is."""
    names = set()
    per_set = ["mean"] if p.own_data else [*p.attributes, "mean"]
    for stage in p.stages:
        names |= {stage_accuracy(stage.name, a) for a in per_set}
        if stage.epochs:
            names |= {train_rate(k, stage.name) for k in TRAIN_RATES}
        if p.retrieval and not p.own_data:
            names |= {stage_retrieval(f"{side}_retrieval_recall@{k}", stage.name)
                      for side in ("image", "text") for k in RETRIEVAL_RECALL_K}
    names |= {gain(c.name) for c in p.compare} | {contrast(c.name) for c in p.contrasts}
    names |= {gain(r.name) for r in p.ablation[1:]} | {train_time_saved(r.name) for r in p.ablation[1:]}
    for c in p.probes:
        names |= {probe_gain(c.name), probe_accuracy(c.a), probe_accuracy(c.b)}
    for b in p.best_of:
        names |= {best_of(b.name)} | {best_over(b.best, o) for o in b.others}
    for soup in p.soups:
        names |= {stage_accuracy(soup.name, a) for a in per_set}
        names |= {soup_over_mean(soup.name), soup_over_best(soup.name)}
        if soup.versus:
            names.add(soup_gain_versus(soup.name, soup.versus))
    for tt in p.time_to_target:
        names |= {speedup_to_target(tt.name), step_s_to_target(tt.name, "arm"), step_s_to_target(tt.name, "baseline")}
    for t in p.text_checks:
        names |= {content_words(t.name)} | {content_words_kept(t.name, m) for m in (t.mask, t.reference)}
    return names


def _paper_recipe(p: PaperRecipe) -> set[str]:
    return {in1k_accuracy(s.name) for s in p.stages} | {in1k_gain(c.name) for c in p.compare}


def _released(p: ReleasedParams) -> set[str]:
    return ({in1k_accuracy(m.name) for m in p.models}
            | {released_retrieval(d, p.retrieval_k, m.name) for m in p.models for d in m.retrieval})


def train_time_saved(row: str) -> str:
    """% of the row before's training step time a row saves at equal samples."""
    return f"train_time_saved_pct_{row}"


def _deepspeed(p: DeepSpeedRecipe) -> set[str]:
    """Per ablation row: its ImageNet gain over the row before and the training time it saves."""
    return {in1k_gain(a.name) for a in p.ablation} | {train_time_saved(a.name) for a in p.ablation}


def declared(params) -> set[str]:
    """Every metric a run with these params writes (or skips, saying why)."""
    for schema, names in ((ThroughputParams, _throughput), (ArchitectureParams, _architecture),
                          (TrainParams, _train), (PaperRecipe, _paper_recipe),
                          (ReleasedParams, _released), (DeepSpeedRecipe, _deepspeed)):
        if isinstance(params, schema):
            return names(params)
    raise TypeError(f"no metric names for {type(params).__name__}")
