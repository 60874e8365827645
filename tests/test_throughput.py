"""Throughput runner: token plan vs what reaches the first block, rotation, a real (tiny) sweep."""
from __future__ import annotations

import pytest
import torch

from cliprepro.runflow import judge_all
from runners import declared_metrics, throughput
from runners.model.models import TokenProbe, build, model_config, with_overrides
from runners.schema.params import Arm, ThroughputParams
from runners.timing import timing
from runners.timing.timing import disturbed_rounds, interleaved_rounds, off_median, rotated, undisturbed_sweep
from tests.conftest import gate_entry


class TestPlannedTokens:
    @pytest.mark.parametrize("model,size,drop,tokens", [
        ("ViT-Proxy-256tok", None, 0.0, 257), ("ViT-Proxy-256tok", None, 0.5, 129),
        ("ViT-Proxy-256tok", None, 0.75, 65), ("ViT-L-16-FLIP", None, 0.0, 197),
        ("ViT-L-16-FLIP", None, 0.5, 99), ("ViT-L-16-FLIP", None, 0.75, 50),
        ("ViT-L-16-FLIP", 112, 0.0, 50), ("ViT-L-16-FLIP", 64, 0.0, 17),
    ])
    def test_plan(self, model, size, drop, tokens):
        cfg = with_overrides(model_config(model), image_size=size)
        assert throughput.planned_tokens(cfg, Arm(name="a", patch_dropout=drop)) == tokens

    @pytest.mark.parametrize("kind,tokens", [("random", 65), ("grid", 65), ("block", 65)])
    def test_equal_budgets_across_mask_kinds(self, kind, tokens):
        cfg = model_config("ViT-Proxy-256tok")
        assert throughput.planned_tokens(cfg, Arm(name="a", patch_dropout=0.75, mask_kind=kind)) == tokens


class TestTokenProbe:
    @pytest.mark.parametrize("train,drop,seen", [(True, 0.5, 129), (True, 0.0, 257), (False, 0.5, 257)])
    def test_sees_tokens_really_computed(self, train, drop, seen):
        """PatchDropout works only in train mode: eval mode would silently time the full sequence."""
        cfg = with_overrides(model_config("ViT-Proxy-256tok"), patch_dropout=drop)
        model = build(cfg).train(train)
        probe = TokenProbe(model.visual.transformer)
        with torch.no_grad():
            model.visual(torch.zeros(2, 3, 64, 64))
        probe.close()
        assert probe.seen == [seen]


class TestRounds:
    @pytest.mark.parametrize("r,order", [(0, ["a", "b", "c"]), (1, ["b", "c", "a"]), (5, ["c", "a", "b"])])
    def test_rotation(self, r, order):
        assert rotated(["a", "b", "c"], r) == order

    def test_every_arm_leads_a_round(self):
        calls: list[str] = []
        steps = {n: (lambda n=n: calls.append(n)) for n in "abc"}
        out = interleaved_rounds(steps, rounds=3, min_block_s=0.0, warmup_steps=1,
                                 device=torch.device("cpu"))
        assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3, "c": 3}
        timed = calls[6:]  # 3 warm-up calls, 3 sizing calls, then one step per block
        assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


STEADY = [1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.03, 1.00, 1.01]


def _slow(blocks: list[float], rounds: tuple[int, ...], x: float = 1.5) -> list[float]:
    return [s * x if r in rounds else s for r, s in enumerate(blocks)]


class TestOffMedian:
    """A round far off the sweep's median, either way, was disturbed."""

    @pytest.mark.parametrize("samples,count", [
        (STEADY, 0),
        ([s * 1.5 for s in STEADY], 0),  # the whole sweep slower: no round stands out
        (_slow(STEADY, (3,)), 1),
        (_slow(STEADY, (1, 2, 7)), 3),
        (_slow(STEADY, (1, 2, 7), x=1.15), 0),  # within the bound
        (_slow(STEADY, (0, 1, 2, 4, 7)), 4),  # most rounds slowed: the others stand out
        ([s / 1.5 if r == 3 else s for r, s in enumerate(STEADY)], 1),
    ])
    def test_table(self, samples, count):
        assert off_median(samples) == count

    @pytest.mark.parametrize("series,count", [({"a": STEADY, "b": _slow(STEADY, (3, 5))}, 2),
                                              ({"a": _slow(STEADY, (1,)), "b": _slow(STEADY, (3,))}, 1),
                                              ({"bare": [1.0]}, 0), ({}, 0)])
    def test_the_most_disturbed_series_counts(self, series, count):
        assert disturbed_rounds(series) == count

    def test_the_declared_bounds(self):
        assert (timing.DISTURBED_X, timing.SWEEP_ATTEMPTS) == (1.2, 3)  # docs/verdicts.md says so

    @pytest.mark.parametrize("rounds,tolerated", [(5, 0), (9, 1), (11, 1), (15, 3)])
    def test_tolerated_rounds_are_fewer_than_the_interval_leaves_out(self, rounds, tolerated):
        assert timing.tolerated_rounds(rounds) == tolerated


class TestUndisturbedSweep:
    CLEAN = {"r": STEADY}
    DISTURBED = {"r": _slow(STEADY, (1, 4, 6))}
    WORSE = {"r": _slow(STEADY, (1, 2, 4, 6))}

    ONE_OFF = {"r": _slow(STEADY, (4,))}

    @pytest.mark.parametrize("sweeps,kept,counts,index", [
        ([CLEAN], CLEAN, [0], 0),
        ([ONE_OFF], ONE_OFF, [1], 0),  # one disturbed round of 9 is tolerated
        ([DISTURBED, CLEAN], CLEAN, [3, 0], 1),
        ([DISTURBED, DISTURBED, CLEAN], CLEAN, [3, 3, 0], 2),
        ([WORSE, DISTURBED, WORSE], DISTURBED, [4, 3, 4], 1),  # never clean: the least disturbed is kept
        ([DISTURBED, WORSE, DISTURBED], DISTURBED, [3, 4, 3], 0),  # ... the first of equals
        ([DISTURBED, WORSE, WORSE, CLEAN], DISTURBED, [3, 4, 4], 0),  # at most 3 sweeps
    ])
    def test_measures_again_while_disturbed(self, sweeps, kept, counts, index):
        attempts: list[int] = []

        def measure(attempt: int) -> dict[str, list[float]]:
            attempts.append(attempt)
            return sweeps[attempt - 1]

        assert undisturbed_sweep(measure, lambda secs: secs, rounds=9) == (kept, counts, index)
        assert attempts == list(range(1, len(counts) + 1))

    def test_more_rounds_tolerate_more(self):
        sweeps = iter([self.DISTURBED, self.CLEAN])
        assert undisturbed_sweep(lambda attempt: next(sweeps), lambda secs: secs, rounds=15).disturbed_rounds == [3]


class TestDisturbedRun:
    """eva_clip_speed's negative control (identical arms) came out inconclusive when other work took
    the CPU during its rounds: the runner measures such a sweep again, judging the per-round ratios,
    and a speed whose every sweep was disturbed is inconclusive saying so, never judged on its
    interval."""

    GATE = dict(metric="speedup_step_mask75", value=1.37, kept_fraction=0.46)  # eva's flash gate: threshold 1.17

    def _run(self, monkeypatch, sweeps):
        calls = iter(sweeps)

        class Clock:  # each sweep takes 10 s
            now = 0.0

            @classmethod
            def monotonic(cls):
                cls.now += 10.0  # one call at the start of a sweep, one at its end
                return cls.now

        monkeypatch.setattr(throughput, "time", Clock)
        monkeypatch.setattr(throughput, "interleaved_rounds", lambda steps, **kw: dict(zip(steps, next(calls))))
        monkeypatch.setattr(throughput, "peak_memory_mb", lambda *a: (None, "not measured in this test"))
        return throughput.run(_tiny_params(rounds=9), "proxy")

    def test_identical_arms_disturbed_once_then_clean_fail_the_gate(self, monkeypatch):
        base_hit = _slow(STEADY, (1, 4, 6), x=1.6)  # the baseline's blocks slowed: ratios up to 1.6
        out = self._run(monkeypatch, [(base_hit, STEADY), (STEADY, STEADY)])
        assert out.inputs["disturbed_rounds_per_sweep"] == {"step": [3, 0]}
        assert out.remeasured_s == 10.0  # the disturbed sweep: left out of the judged runtime
        m = out.metrics["speedup_step_mask75"]
        assert m.timing_disturbed is None and m.hi < 1.1
        [result] = judge_all([gate_entry(**self.GATE)], out.metrics, out.beside, out.errors)
        assert result.verdict == "not_reproduced", result.reason

    def test_a_round_slowed_for_every_arm_is_no_disturbance(self, monkeypatch):
        first_slow = _slow(STEADY, (0,), x=1.3)  # as the first round after warm-up sometimes is
        out = self._run(monkeypatch, [(first_slow, first_slow)])
        assert out.inputs["disturbed_rounds_per_sweep"] == {"step": [0]} and out.remeasured_s == 0

    def test_every_sweep_disturbed_is_inconclusive_with_the_reason(self, monkeypatch):
        base_hit = _slow(STEADY, (1, 4, 6), x=1.6)
        out = self._run(monkeypatch, [(base_hit, STEADY)] * 3)
        assert out.inputs["disturbed_rounds_per_sweep"] == {"step": [3, 3, 3]}
        assert out.remeasured_s == 20.0  # every sweep but the kept one
        assert all(m.timing_disturbed for m in out.metrics.values())
        [result] = judge_all([gate_entry(**self.GATE)], out.metrics, out.beside, out.errors)
        assert result.verdict == "inconclusive" and "timing disturbed: 3 of 9 rounds more than 1.2x" in result.reason


def _tiny_params(**kw) -> ThroughputParams:
    # model_construct: below the suite minimums (9 rounds, 1 s blocks) to keep the test fast
    data = dict(model="ViT-Proxy-256tok", image_size=None, context_length=None, modes=["step"],
                precision="fp32", batch_size=2, rounds=3, min_block_s=0.0, warmup_steps=1, seed=0,
                arms=[Arm(name="mask0"), Arm(name="mask75", patch_dropout=0.75)])
    data.update(kw)
    return ThroughputParams.model_construct(**data)


class TestRun:
    def test_tiny_sweep_measures_and_matches_plan(self):
        out = throughput.run(_tiny_params(), "proxy")
        assert out.errors == []
        m = out.metrics["speedup_step_mask75"]
        assert m.n == 3 and len(m.samples) == 3 and m.lo <= m.value <= m.hi
        assert out.beside["speedup_step_mask75"]["flops_ideal_speedup"] > 2
        assert [p["tokens_first_block_seen"] for p in out.points] == [[257], [65]]
        assert set(out.metrics) | set(out.skip) == declared_metrics(_tiny_params())  # what it declares

    def test_token_mismatch_is_an_error_verdict(self, monkeypatch):
        monkeypatch.setattr(throughput, "planned_tokens", lambda cfg, arm: 999)
        out = throughput.run(_tiny_params(rounds=1), "proxy")
        assert any("planned 999 tokens" in e for e in out.errors)
        entry = gate_entry(metric="speedup_step_mask75")
        [result] = judge_all([entry], out.metrics, out.beside, out.errors)
        assert result.verdict == "error" and "planned 999" in result.reason
