"""runners.timing.estimate: modelled GPU-days carry the throughput interval and every declared range."""
from __future__ import annotations

import pytest

from runners.timing.estimate import ArmRate, schedule_days

DAY = 86400.0


def rate(ips=100.0, lo=90.0, hi=110.0, flops=1e12):
    return ArmRate(ips, lo, hi, flops)


class TestScheduleDays:
    def test_on_the_target_class_it_is_samples_over_rate(self):
        d = schedule_days([(rate(), 100.0 * 8 * DAY)], 8, (1.0, 1.0), True, 1.0, None, 1.0)
        assert (d.value, d.lo, d.hi) == pytest.approx((1.0, 100 / 110, 100 / 90))

    def test_scaling_efficiency_widens_and_shifts(self):
        d = schedule_days([(rate(100, 100, 100), 100.0 * 8 * DAY)], 8, (0.8, 1.0), True, 1.0, None, 1.0)
        assert (d.value, d.lo, d.hi) == pytest.approx((1 / 0.9, 1.0, 1 / 0.8))

    def test_another_device_moves_the_fraction_of_peak(self):
        """Measured at 10% of this device's matmul peak; the target does 10% of rho x its peak."""
        r = rate(100, 100, 100, flops=1e12)  # 1e14 FLOP/s achieved
        d = schedule_days([(r, 1e9)], 1, (1.0, 1.0), False, matmul_peak=1e15, device_datasheet_peak=2e15,
                          target_peak=1e16)
        at = lambda rho: 1e9 / (1000 * rho) / DAY  # noqa: E731  (target img/s: 0.1 x rho x 1e16 / 1e12)
        assert (d.lo, d.value, d.hi) == pytest.approx((at(1.0), at(0.75), at(0.5)))
        assert "0.50-1 of its datasheet peak" in d.how

    def test_unknown_datasheet_declares_half(self):
        d = schedule_days([(rate(), 1e9)], 1, (1.0, 1.0), False, 1e15, None, 1e16)
        assert "unknown: 0.5 declared" in d.how and d.hi > d.value > d.lo

    def test_stages_add(self):
        one = schedule_days([(rate(), 1e9)], 8, (0.9, 0.9), True, 1.0, None, 1.0)
        two = schedule_days([(rate(), 1e9), (rate(), 1e9)], 8, (0.9, 0.9), True, 1.0, None, 1.0)
        assert two.value == pytest.approx(2 * one.value)
