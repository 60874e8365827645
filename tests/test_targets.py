"""Time to target: the curve arithmetic, the speed-up's interval and its coverage (simulated),
the measurement over seeds with "> budget", and the suite schema's checks of the chains."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from runners.schema.train_params import Stage, TimeToTarget, TrainParams
from runners.training import targets


class TestTimeTo:
    @pytest.mark.parametrize("curve, target, want", [
        ([(0, 25), (10, 45), (20, 55)], 50, 15.0),   # interpolated between the points around the crossing
        ([(0, 25), (10, 50), (20, 55)], 50, 10.0),   # reached exactly at a point
        ([(0, 25), (10, 60), (20, 40)], 50, 10 * 25 / 35),  # the first crossing counts
        ([(0, 25), (10, 45), (20, 49.9)], 50, None),  # never: > budget
        ([(0, 25)], 50, None),
    ])
    def test_table(self, curve, target, want):
        got = targets.time_to(curve, target)
        assert got == pytest.approx(want) if want is not None else got is None


class TestSpeedup:
    def test_ratio_of_geometric_means(self):
        m = targets.speedup([10.0, 10.0, 10.0], [20.0, 20.0, 20.0])
        assert (m.value, m.lo, m.hi) == pytest.approx((2.0, 2.0, 2.0)) and m.unit == "x"

    def test_interval_contains_the_value(self):
        m = targets.speedup([9.0, 11.0, 10.0], [21.0, 19.0, 22.0])
        assert m.lo < m.value < m.hi and m.confidence == 0.95

    def test_welch_covers_and_a_seed_bootstrap_would_not(self):
        """Log-normal times, 3 seeds an arm: the Welch interval covers the true ratio about 95% of
        the time; a percentile bootstrap over the same seeds far less (why it is not used)."""
        rng = np.random.default_rng(0)
        true, sims = 1.5, 2000
        welch = boot = 0
        for _ in range(sims):
            arm = np.exp(rng.normal(math.log(10.0), 0.15, 3))
            base = np.exp(rng.normal(math.log(15.0), 0.15, 3))
            m = targets.speedup(list(arm), list(base))
            welch += m.lo <= true <= m.hi
            ia, ib = rng.integers(0, 3, (200, 3)), rng.integers(0, 3, (200, 3))
            ratios = np.exp(np.log(base[ib]).mean(1) - np.log(arm[ia]).mean(1))
            lo, hi = np.percentile(ratios, [2.5, 97.5])
            boot += lo <= true <= hi
        assert 0.93 <= welch / sims <= 0.97
        assert boot / sims < 0.85


class _T:
    def __init__(self, logs, acc):
        self.logs, self.scores = logs, {"scores": {"acc1_mean": acc}}


def _stage(tmp_path, name, seed, epochs, accs, step_s):
    logs = tmp_path / f"{name}-{seed}"
    logs.mkdir()
    (logs / "step_log.json").write_text(json.dumps({"epochs": [{"step_s": step_s, "samples": 100}] * epochs}))
    return _T(logs, accs[-1])


class TestMeasure:
    def _params(self):
        stages = [Stage(name="base", model="ViT-Tiny96-P8", epochs=2, batch_size=8, lr=1e-3),
                  Stage(name="masked", model="ViT-Tiny96-P8", epochs=2, batch_size=8, lr=1e-3, patch_dropout=0.5),
                  Stage(name="tuned", model="ViT-Tiny96-P8", epochs=1, batch_size=8, lr=1e-4, init="masked")]
        tt = TimeToTarget(name="t", arm=["masked", "tuned"], baseline=["base"], target_acc1_pct=50, target_source="test")
        return TrainParams(stages=stages, seeds=[0, 1], time_to_target=[tt]), tt

    def _trained(self, tmp_path, tuned_final):
        accs = {"base": [40, 60], "masked": [30, 45], "tuned": [tuned_final]}
        step = {"base": 10.0, "masked": 5.0, "tuned": 2.0}
        trained = {(n, s): _stage(tmp_path, n, s, len(a), a, step[n] * (1 + 0.1 * s)) for n, a in accs.items() for s in (0, 1)}
        return trained, (lambda stage, seed, epoch: accs[stage.name][epoch - 1])

    def test_speedup_from_the_curves(self, tmp_path):
        params, tt = self._params()
        trained, at_epoch = self._trained(tmp_path, 55)
        metrics, points, skips = targets.measure(tt, params, trained, at_epoch, chance_pct=25.0)
        assert skips == {}
        # base reaches 50 at 10 + 10 * (50 - 40) / 20 = 15 s (x1.1 for seed 1); masked + tuned at 10 + 2 * 5 / 10 = 11 s
        assert metrics["step_s_to_target_t_baseline"].value == pytest.approx((15 + 16.5) / 2)
        assert metrics["speedup_to_target_t"].value == pytest.approx(15 / 11)
        assert [p["acc1_mean"] for p in points if p.get("side") == "arm" and p["seed"] == 0 and "acc1_mean" in p] == [30, 45, 55]

    def test_an_arm_that_never_gets_there_is_over_budget(self, tmp_path):
        params, tt = self._params()
        trained, at_epoch = self._trained(tmp_path, 48)
        metrics, _, skips = targets.measure(tt, params, trained, at_epoch, chance_pct=25.0)
        assert "speedup_to_target_t" not in metrics
        assert skips["speedup_to_target_t"].startswith("> budget: arm seed 0: > budget 12.0 s")


class TestSchema:
    @pytest.mark.parametrize("arm, baseline, said", [
        (["tuned"], ["base"], "must start from scratch"),
        (["base", "tuned"], ["base"], "tuned must start from base"),
        (["masked", "nope"], ["base"], "no stage 'nope'"),
    ])
    def test_chains_are_checked(self, arm, baseline, said):
        stages = [dict(name="base", model="ViT-Tiny96-P8", epochs=2, batch_size=8, lr=1e-3),
                  dict(name="masked", model="ViT-Tiny96-P8", epochs=2, batch_size=8, lr=1e-3),
                  dict(name="tuned", model="ViT-Tiny96-P8", epochs=1, batch_size=8, lr=1e-4, init="masked")]
        tt = dict(name="t", arm=arm, baseline=baseline, target_acc1_pct=50, target_source="x")
        with pytest.raises(ValueError, match=said):
            TrainParams(stages=stages, seeds=[0, 1], time_to_target=[tt])

    def test_one_seed_is_refused(self):
        stages = [dict(name="base", model="ViT-Tiny96-P8", epochs=2, batch_size=8, lr=1e-3, n_seeds=1)]
        tt = dict(name="t", arm=["base"], baseline=["base"], target_acc1_pct=50, target_source="x")
        with pytest.raises(ValueError, match="2 or more seeds"):
            TrainParams(stages=stages, seeds=[0, 1], time_to_target=[tt])
