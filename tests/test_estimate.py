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


class TestHoursAndDollars:
    def test_gpu_hours_are_days_times_24_times_gpus_and_dollars_add_the_price(self):
        from runners.timing.estimate import Days, dollars, gpu_hours

        h = gpu_hours(Days(2.0, 1.5, 3.0, "m"), 8)
        assert (h.value, h.lo, h.hi) == (384.0, 288.0, 576.0) and "x 24 x 8" in h.how
        d = dollars(h, 1.5)
        assert (d.value, d.lo, d.hi) == (576.0, 432.0, 864.0) and "$1.5 per GPU-hour" in d.how


class TestScheduleParams:
    BASE = dict(name="s", pretrain_arm="a", pretrain_samples=1e9, finetune_arm="b", finetune_samples=1e8)

    def test_stages_in_order_with_the_extra_ones(self):
        from runners.schema.params import Schedule

        s = Schedule(**self.BASE, more=[{"arm": "c", "samples": 1e7}])
        assert s.stages() == [("a", 1e9), ("b", 1e8), ("c", 1e7)]

    def test_a_price_needs_its_source(self):
        from pydantic import ValidationError

        from runners.schema.params import Schedule

        with pytest.raises(ValidationError, match="price_source"):
            Schedule(**self.BASE, usd_per_gpu_hour=1.5)
        assert Schedule(**self.BASE, usd_per_gpu_hour=1.5, price_source="the paper's table").usd_per_gpu_hour == 1.5


class TestScheduleMetrics:
    """runners.throughput._schedules: days, GPU-hours and dollars, judged only from an A100 record."""

    def _run(self, device: str):
        from cliprepro.record import Metric
        from runners.schema.output import Output
        from runners.schema.params import Schedule
        from runners.throughput import _schedules

        s = Schedule(name="v2", pretrain_arm="a", pretrain_samples=1e9, finetune_arm="b", finetune_samples=1e8,
                     more=[{"arm": "c", "samples": 1e8}], gpus=8, scaling_efficiency=(1.0, 1.0),
                     usd_per_gpu_hour=2.0, price_source="test")
        params = type("P", (), {"schedules": [s]})()
        ips = {arm: Metric(value=100.0, lo=100.0, hi=100.0, n=9, over="rounds") for arm in "abc"}
        out = Output()
        _schedules(out, params, {arm: 1e12 for arm in "abc"}, ips, 1e15, None, device)
        return out

    def test_on_an_a100_every_estimate_is_a_metric(self):
        out = self._run("cuda: NVIDIA A100-SXM4-80GB")
        days = 1.2e9 / (100.0 * 8) / 86400
        assert out.metrics["a100_days_v2"].value == pytest.approx(days)
        assert out.metrics["a100_gpu_hours_v2"].value == pytest.approx(days * 24 * 8)
        assert out.metrics["usd_v2"].value == pytest.approx(days * 24 * 8 * 2.0)
        assert all(out.metrics[m].over == "modelled" for m in ("a100_days_v2", "a100_gpu_hours_v2", "usd_v2"))

    def test_elsewhere_they_are_skipped_with_the_model_printed(self):
        out = self._run("cuda: NVIDIA H100 80GB HBM3")
        assert not out.metrics and set(out.skip) == {"a100_days_v2", "a100_gpu_hours_v2", "usd_v2"}
        assert all("modelled only" in why and "datasheet peak" in why for why in out.skip.values())


class TestScheduleTargets:
    def test_a_single_stage_schedule_on_tpu_cores_is_modelled_never_judged(self):
        from cliprepro.record import Metric
        from runners.schema.output import Output
        from runners.schema.params import Schedule
        from runners.throughput import _schedules

        s = Schedule(name="base", target="tpu_v3_core", pretrain_arm="a", pretrain_samples=1e9, gpus=256)
        assert s.stages() == [("a", 1e9)]
        out = Output()
        ips = {"a": Metric(value=10.0, lo=9.0, hi=11.0, n=9, over="rounds")}
        _schedules(out, type("P", (), {"schedules": [s]})(), {"a": 1e12}, ips, 1e15, 2e15, "cuda: NVIDIA A100-SXM4-80GB")
        assert not out.metrics and set(out.skip) == {"tpu_v3_core_days_base", "tpu_v3_core_hours_base"}
        assert "cannot run on" in out.skip["tpu_v3_core_days_base"]
        assert out.points[0]["target"] == "TPU-v3 core-days" and out.points[0]["days_estimate"] > 0

    def test_fine_tune_arm_and_samples_go_together(self):
        from pydantic import ValidationError

        from runners.schema.params import Schedule

        with pytest.raises(ValidationError, match="go together"):
            Schedule(name="s", pretrain_arm="a", pretrain_samples=1e9, finetune_arm="b")
