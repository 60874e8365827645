"""Throughput runner: time an open_clip model's training step over a sweep of arms.

Protocol (docs/design.md "Runners"): train mode (PatchDropout is a no-op in eval mode); per arm, the
token count reaching the first vision block and the SDPA kernel the profiler saw are recorded, and
a mismatch with the plan is an error; interleaved rounds in rotated order, timed blocks >= 1 s,
>= 9 rounds; per-round ratio of per-sample times against the arm's baseline, its median and
order-statistic interval, the FLOPs-ideal ratio beside it; MFU against the datasheet peak and a
matmul peak measured on the device; peak memory per arm.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from cliprepro.provenance import device_info
from runners.model.flops import tower_flops
from runners.model.models import build, first_block_tokens, model_config, with_overrides
from runners.schema.output import Output, exact, from_samples
from runners.schema.params import Arm, ThroughputParams as Params
from cliprepro.record import Metric
from runners.schema import metric_names as names
from runners.timing.estimate import ArmRate, dollars, gpu_hours, schedule_days
from runners.timing.peaks import TARGETS, datasheet_peak, measured_matmul_peak
from cliprepro import progress
from runners.timing.timing import (DISTURBED_X, Step, interleaved_rounds, tolerated_rounds,
                                    undisturbed_sweep)
from runners.timing.trainstep import (arm_config, build_arm, make_step, peak_memory_mb, planned_tokens,
                               sdpa_kernels_seen)

__all__ = ["Params", "plan", "run", "planned_tokens"]


def _fwd_flops(cfg: dict, arm: Arm, mode: str) -> int:
    """Forward FLOPs per sample; grid / block masks are counted at their random-mask equivalent
    (same kept-token count), since FlopCounterMode sees only the open_clip model."""
    img, txt = tower_flops(with_overrides(cfg, patch_dropout=arm.patch_dropout))
    return img if mode == "image_tower" else img + txt


def plan(params: Params, scale: str) -> str:
    lines = [f"throughput: modes {', '.join(params.modes)}, precision {params.precision}, "
             f"{params.rounds} interleaved rounds, timed blocks >= {params.min_block_s} s, "
             f"warm-up {params.warmup_steps} steps, 1 device ({'CUDA' if scale != 'proxy' else 'CPU'})"]
    for arm in params.arms:
        cfg = arm_config(params, arm)
        base = params.baseline_of(arm)
        lines.append(f"  arm {arm.name}: {arm.model or params.model}, {arm.mask_kind} mask "
                     f"{arm.patch_dropout}, batch {arm.batch_size or params.batch_size}, image "
                     f"{cfg['vision_cfg']['image_size']} px, context {cfg['text_cfg']['context_length']}, "
                     f"attention {arm.attention}, {arm.optimizer}, tokens at first block "
                     f"{planned_tokens(cfg, arm)}, forward GFLOPs/sample "
                     f"{_fwd_flops(cfg, arm, 'step') / 1e9:.2f}"
                     f"{', vs ' + base.name if base else ' (baseline)'}")
    for check in params.token_checks:
        lines.append(f"  token check {check.name}: {check.model} at {check.image_size or 'native'} px")
    for s in params.schedules:
        steps = ", then ".join(f"{n:.4g} samples at {arm}" for arm, n in s.stages())
        price = f", ${s.usd_per_gpu_hour:g}/GPU-hour ({s.price_source})" if s.usd_per_gpu_hour else ""
        target = TARGETS[s.target]
        lines.append(f"  schedule {s.name}: {steps}, on {s.gpus} {target.plural} ({target.days} estimate{price})")
    return "\n".join(lines)


def token_check(model: str, image_size: int | None) -> int:
    """Tokens a full-size model's first vision block receives, by a real forward on the meta device."""
    cfg = with_overrides(model_config(model), image_size=image_size)
    m = build(cfg, "meta").train()
    probe = first_block_tokens(m)
    side = cfg["vision_cfg"]["image_size"]
    with torch.device("meta"):
        m.visual(torch.empty(1, 3, side, side))
    probe.close()
    return probe.seen[0]


def per_round_ratios(params: Params, secs: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per round, each compared arm's speedup over its baseline (per-sample time of the baseline
    over the arm's), by arm; a sweep without baselines: each arm's block times."""
    ratios = {}
    for arm in params.arms:
        base = params.baseline_of(arm)
        if base is not None:
            b_batch, a_batch = base.batch_size or params.batch_size, arm.batch_size or params.batch_size
            ratios[arm.name] = [(b / b_batch) / (a / a_batch) for b, a in zip(secs[base.name], secs[arm.name])]
    return ratios or secs


def _compare(out: Output, params: Params, mode: str, secs: dict[str, list[float]],
             flops: dict[str, int], kernels: dict[str, list[str]]) -> None:
    per_round = per_round_ratios(params, secs)
    for arm in params.arms:
        base = params.baseline_of(arm)
        if base is None:
            continue
        if arm.attention != base.attention and kernels[arm.name] == kernels[base.name]:
            out.errors.append(f"{mode}/{arm.name}: attention {arm.attention} vs {base.attention} "
                              f"planned, but both arms ran {kernels[arm.name]}")
        ratios = per_round[arm.name]
        name = names.speed("speedup", mode, arm.name)
        out.metrics[name] = from_samples(ratios, "x")
        out.metrics[names.speed("time_saved_pct", mode, arm.name)] = from_samples(
            [100 * (1 - 1 / r) for r in ratios], "%")
        out.beside[name] = {"flops_ideal_speedup": round(flops[base.name] / flops[arm.name], 4)}


def run(params: Params, scale: str, build_dir: Path | None = None) -> Output:
    device = torch.device("cuda" if scale in ("gpu", "paper") else "cpu")
    out = Output(device=device_info(device))
    name = out.device["device_class"]
    sheet, sheet_src = datasheet_peak(name, params.precision)
    matmul = measured_matmul_peak(device, params.precision)
    out.inputs = {"data": "random tensors (throughput only)", "matmul_peak_flops": matmul,
                  "datasheet_peak_flops": sheet, "datasheet_source": sheet_src}
    for check in params.token_checks:
        out.metrics[names.tokens(check.name)] = exact(token_check(check.model, check.image_size), "tokens")
    for mode in params.modes:
        measured_before = set(out.metrics)
        steps: dict[str, Step] = {}
        cfgs, probes, kernels, flops, memory = {}, {}, {}, {}, {}
        for arm in params.arms:
            cfg = cfgs[arm.name] = arm_config(params, arm)
            model = build_arm(cfg, arm, device, params.seed)
            probes[arm.name] = first_block_tokens(model)
            steps[arm.name] = make_step(model, mode, arm.batch_size or params.batch_size, cfg, device,
                                        params.precision, arm, params.optimizer, params.seed)
            kernels[arm.name] = sdpa_kernels_seen(steps[arm.name])
            memory[arm.name] = peak_memory_mb(params, arm, mode, device, steps[arm.name])
            flops[arm.name] = _fwd_flops(cfg, arm, mode)

        sweep_s: list[float] = []

        def sweep(attempt: int) -> dict[str, list[float]]:
            again = f" (sweep {attempt}: the last one was disturbed)" if attempt > 1 else ""
            started = time.monotonic()
            with progress.unit(f"{mode}: {len(params.arms)} arms x {params.rounds} rounds{again}",
                               len(params.arms) * params.rounds, "block") as bar:
                secs = interleaved_rounds(steps, rounds=params.rounds, min_block_s=params.min_block_s,
                                          warmup_steps=params.warmup_steps, device=device, after_block=bar.update)
            sweep_s.append(time.monotonic() - started)
            return secs

        kept = undisturbed_sweep(sweep, lambda secs: per_round_ratios(params, secs), params.rounds)
        secs, disturbed = kept.secs, kept.disturbed_rounds[kept.kept]
        out.remeasured_s += sum(sweep_s) - sweep_s[kept.kept]  # every sweep but the kept one
        out.inputs.setdefault("disturbed_rounds_per_sweep", {})[mode] = kept.disturbed_rounds
        untrusted = (f"{disturbed} of {params.rounds} rounds more than {DISTURBED_X}x off their median "
                     f"in the least disturbed of {len(kept.disturbed_rounds)} sweeps"
                     if disturbed > tolerated_rounds(params.rounds) else None)
        for arm in params.arms:
            batch = arm.batch_size or params.batch_size
            planned = planned_tokens(cfgs[arm.name], arm)
            seen = sorted(set(probes[arm.name].seen))
            probes[arm.name].close()
            if seen != [planned]:
                out.errors.append(f"{mode}/{arm.name}: planned {planned} tokens at the first block, "
                                  f"saw {seen}")
            ms = from_samples([s * 1e3 for s in secs[arm.name]], "ms")
            ips = from_samples([batch / s for s in secs[arm.name]], "img/s")
            achieved = 3 * flops[arm.name] * ips.value  # forward + backward ~ 3x forward
            out.metrics[names.speed("ms_per_step", mode, arm.name)] = ms
            out.metrics[names.speed("img_per_s", mode, arm.name)] = ips
            out.points.append({
                "mode": mode, "arm": arm.name, "model": arm.model or params.model,
                "patch_dropout": arm.patch_dropout, "mask_kind": arm.mask_kind,
                "attention": arm.attention, "optimizer": arm.optimizer, "batch_size": batch,
                "image_size": cfgs[arm.name]["vision_cfg"]["image_size"],
                "context_length": cfgs[arm.name]["text_cfg"]["context_length"],
                "tokens_first_block_planned": planned, "tokens_first_block_seen": seen,
                "sdpa_kernels_seen": kernels[arm.name],
                "fwd_flops_per_sample": flops[arm.name], "train_flops_per_sample_est": 3 * flops[arm.name],
                "ms_per_step_median": ms.value, "img_per_s_median": ips.value,
                "mfu_vs_measured_matmul_pct": round(100 * achieved / matmul, 2),
                "mfu_vs_datasheet_pct": round(100 * achieved / sheet, 2) if sheet else None,
                "peak_memory_mb": memory[arm.name][0], "peak_memory_how": memory[arm.name][1],
            })
        _compare(out, params, mode, secs, flops, kernels)
        if mode == "step":
            _schedules(out, params, flops, {a.name: out.metrics[names.speed("img_per_s", "step", a.name)] for a in params.arms},
                       matmul, sheet, name)
        if untrusted:
            for key in set(out.metrics) - measured_before:  # every speed of this mode, and what it models
                out.metrics[key] = out.metrics[key].model_copy(update={"timing_disturbed": untrusted})
    return out


def _schedules(out: Output, params: Params, flops: dict[str, int], ips: dict[str, Metric],
               matmul: float, sheet: float | None, device_name: str) -> None:
    """Days, device-hours and dollars of a schedule on its target class, modelled
    (runners.timing.estimate): the throughput interval, the scaling efficiency range and, off the
    target, the transfer of a fraction of peak; judged (as findings) only from a record of the target
    class, else skipped with the modelled numbers printed."""
    for s in params.schedules:
        target = TARGETS[s.target]
        on_target = target.marker is not None and target.marker in device_name
        stages = [(ArmRate(ips[arm].value, ips[arm].lo, ips[arm].hi, 3 * flops[arm]), samples)
                  for arm, samples in s.stages()]
        days = schedule_days(stages, s.gpus, s.scaling_efficiency, on_target, matmul, sheet, target.peak_bf16)
        hours = gpu_hours(days, s.gpus)
        modelled = {names.target_days(s.target, s.name): (days, "days"),
                    names.target_hours(s.target, s.name): (hours, target.hours)}
        usd = dollars(hours, s.usd_per_gpu_hour) if s.usd_per_gpu_hour is not None else None
        if usd is not None:
            modelled[names.usd(s.name)] = (usd, "USD")
        for metric, (est, unit) in modelled.items():
            if on_target:
                out.metrics[metric] = Metric(value=est.value, lo=est.lo, hi=est.hi, n=1, unit=unit, over="modelled")
            else:
                out.skip[metric] = (f"modelled only: {est.value:.4g} [{est.lo:.4g}, {est.hi:.4g}] {unit} on "
                                    f"{s.gpus} x {target.unit} from throughput measured on "
                                    f"{device_name} ({days.how}); a verdict needs a record from "
                                    f"{'an ' + target.marker if target.marker else 'that device class, which this tool cannot run on'}")
        out.points.append({"schedule": s.name, "target": target.days, "days_estimate": round(days.value, 4),
                           "days_lo": round(days.lo, 4), "days_hi": round(days.hi, 4),
                           "hours_estimate": round(hours.value, 1),
                           "usd_estimate": round(usd.value) if usd is not None else None,
                           "measured_on": device_name, "model": days.how, "note": s.note})
