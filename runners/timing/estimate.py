"""Modelled GPU-days of a published schedule, with the uncertainty of every assumption in it.

Pure arithmetic (no torch). A schedule's days are modelled, never measured: they carry the
throughput interval measured here, the scaling efficiency of N GPUs (declared range), and, when the
throughput was measured on another device than the schedule's, the transfer of a fraction of peak
from this device to the A100 (the measured-vs-datasheet matmul peak ratio of this device, up to
the datasheet itself). The interval is the worst and best case of those ranges.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmRate:
    """Per-GPU images/s measured for one arm: median and interval, and its FLOPs per sample."""
    img_per_s: float
    img_per_s_lo: float
    img_per_s_hi: float
    train_flops_per_sample: float


@dataclass(frozen=True)
class Days:
    value: float
    lo: float
    hi: float
    how: str


def schedule_days(stages: list[tuple[ArmRate, float]], gpus: int, scaling_efficiency: tuple[float, float],
                  same_device: bool, matmul_peak: float, device_datasheet_peak: float | None,
                  target_peak: float) -> Days:
    """Days for `stages` ((rate, samples) each) on `gpus` GPUs of the target class.

    same_device: the rates were measured on the target class, used as they are. Otherwise each
    rate becomes a fraction of this device's measured matmul peak (MFU) and is moved to the target
    at a fraction rho of its datasheet peak, rho from this device's measured / datasheet ratio
    (pessimistic end) to 1 (the datasheet); with no datasheet for this device, rho in [0.5, 1]."""
    eff_lo, eff_hi = scaling_efficiency
    eff_mid = (eff_lo + eff_hi) / 2
    if same_device:
        rho = (1.0, 1.0, 1.0)
        how = f"measured on the target class; {gpus} GPUs at scaling efficiency {eff_lo:g}-{eff_hi:g}"
    else:
        low = min(1.0, matmul_peak / device_datasheet_peak) if device_datasheet_peak else 0.5
        rho = (low, (low + 1) / 2, 1.0)
        how = (f"MFU measured against this device's matmul peak, moved to the target at {low:.2f}-1 of its "
               f"datasheet peak (this device's measured / datasheet ratio{'' if device_datasheet_peak else ' unknown: 0.5 declared'}); "
               f"{gpus} GPUs at scaling efficiency {eff_lo:g}-{eff_hi:g}")

    def seconds(pick: int, r: float, eff: float) -> float:
        total = 0.0
        for rate, samples in stages:
            ips = (rate.img_per_s_lo, rate.img_per_s, rate.img_per_s_hi)[pick]
            if not same_device:  # the same fraction of peak on the target GPU
                ips = ips * rate.train_flops_per_sample / matmul_peak * r * target_peak / rate.train_flops_per_sample
            total += samples / (ips * gpus * eff)
        return total

    day = 86400.0
    return Days(value=seconds(1, rho[1], eff_mid) / day, lo=seconds(2, rho[2], eff_hi) / day,
                hi=seconds(0, rho[0], eff_lo) / day, how=how)


def gpu_hours(days: Days, gpus: int) -> Days:
    """The same estimate as GPU-hours: days x 24 x GPUs (the interval scales with it)."""
    k = 24.0 * gpus
    return Days(days.value * k, days.lo * k, days.hi * k, f"{days.how}; GPU-hours = days x 24 x {gpus}")


def dollars(hours: Days, usd_per_gpu_hour: float) -> Days:
    """GPU-hours at a declared price (the price is an assumption, printed; it has no interval)."""
    return Days(hours.value * usd_per_gpu_hour, hours.lo * usd_per_gpu_hour, hours.hi * usd_per_gpu_hour,
                f"{hours.how}; at ${usd_per_gpu_hour:g} per GPU-hour")
