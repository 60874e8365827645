"""Ablation rows (runners.training.ablation), their schema, and the linear probe's classifier
(runners.training.linprobe): pure functions on made-up outcomes and rates."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from runners.schema import metric_names as names
from runners.schema.train_params import Stage, TrainParams
from runners.training import ablation, linprobe

BASE = dict(model="ViT-Tiny48-P8", epochs=1, batch_size=64, lr=1e-3)


def _params(**kw) -> TrainParams:
    stages = [Stage(name=n, **BASE) for n in ("a", "b", "c")]
    return TrainParams(seeds=[0, 1], stages=stages, **kw)


ROWS = [{"name": "base", "stage": "a", "adds": "base"}, {"name": "one", "stage": "b", "adds": "x"},
        {"name": "two", "stage": "c", "adds": "y"}]


class TestTimeSaved:
    @pytest.mark.parametrize("before, row, saved", [
        ({0: 100.0}, {0: 200.0}, [50.0]),           # twice the step rate: half the time
        ({0: 100.0, 1: 100.0}, {0: 100.0, 1: 125.0}, [0.0, 20.0]),
        ({0: 100.0}, {0: 80.0}, [-25.0]),           # slower: negative
        ({0: 100.0, 1: 100.0}, {1: 200.0}, [50.0]),  # only seeds both rows trained
    ])
    def test_table(self, before, row, saved):
        pt = lambda r: {"step_samples_per_s": r, "data_wait_fraction": 0.01}  # noqa: E731
        m = ablation.time_saved({s: pt(r) for s, r in before.items()}, {s: pt(r) for s, r in row.items()})
        assert m.samples == pytest.approx(saved) and m.value == pytest.approx(np.mean(saved))
        assert m.over == "seeds" and m.eval_se == 0.0 and m.n == len(saved)

    def test_carries_the_worse_data_wait(self):
        m = ablation.time_saved({0: {"step_samples_per_s": 1.0, "data_wait_fraction": 0.3}},
                                {0: {"step_samples_per_s": 2.0, "data_wait_fraction": 0.05}})
        assert m.data_wait_fraction == 0.3

    def test_no_common_seed_is_nan(self):
        m = ablation.time_saved({0: {"step_samples_per_s": 1.0, "data_wait_fraction": 0.0}}, {})
        assert m.n == 0 and np.isnan(m.value)


class TestRowsMetrics:
    def test_each_row_against_the_row_before(self):
        p = _params(ablation=ROWS)
        ones, zeros = np.ones(10, np.uint8), np.zeros(10, np.uint8)
        half = np.array([1, 0] * 5, np.uint8)
        correct = {("a", s): zeros for s in (0, 1)} | {("b", s): half for s in (0, 1)} | {("c", s): ones for s in (0, 1)}
        points = [{"stage": st, "seed": s, "step_samples_per_s": r, "data_wait_fraction": 0.0}
                  for st, r in (("a", 100.0), ("b", 100.0), ("c", 200.0)) for s in (0, 1)]
        got = ablation.rows_metrics(p, correct, points)
        assert set(got) == {names.gain("one"), names.gain("two"), names.train_time_saved("one"), names.train_time_saved("two")}
        assert got[names.gain("one")].value == pytest.approx(50.0) and got[names.gain("two")].value == pytest.approx(50.0)
        assert got[names.train_time_saved("one")].value == 0.0 and got[names.train_time_saved("two")].value == 50.0


class TestSchema:
    def test_declared_metrics(self):
        declared = names.declared(_params(ablation=ROWS, probes=[{"name": "p", "a": "a", "b": "b"}]))
        assert {names.gain("one"), names.train_time_saved("two"), names.probe_gain("p"),
                names.probe_accuracy("a"), names.probe_accuracy("b")} <= declared
        assert names.gain("base") not in declared  # the base row has nothing before it

    @pytest.mark.parametrize("kw, said", [
        ({"ablation": [{**ROWS[0], "stage": "zz"}]}, "no stage 'zz'"),
        ({"probes": [{"name": "p", "a": "a", "b": "zz"}]}, "no stage 'zz'"),
        ({"ablation": ROWS, "compare": [{"name": "one", "a": "a", "b": "b"}]}, "names must differ"),
    ])
    def test_refused(self, kw, said):
        with pytest.raises(ValidationError, match=said):
            _params(**kw)

    def test_later_fields_leave_old_dumps_alone(self):
        dump = _params().model_dump()
        assert "ablation" not in dump and "probes" not in dump


class TestHeldOutCorrect:
    def test_separable_features_are_learned_and_scored_on_the_other_half(self):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, 200)
        x = np.eye(3)[y] + 0.05 * rng.standard_normal((200, 3))
        got = linprobe.held_out_correct(x, y)
        assert got.shape == (100,) and got.mean() > 0.95

    def test_features_without_the_label_are_near_chance(self):
        rng = np.random.default_rng(1)
        y = rng.integers(0, 2, 400)
        got = linprobe.held_out_correct(rng.standard_normal((400, 4)), y)
        assert 0.35 < got.mean() < 0.65

    def test_one_class_in_the_fit_half(self):
        y = np.array([0, 1, 0, 0, 0, 1])
        assert linprobe.held_out_correct(np.zeros((6, 2)), y).tolist() == [0, 1, 0]  # the constant guess 0


class TestTable:
    def _record(self, **metrics):
        from cliprepro.record import Metric
        from tests.conftest import gate_entry, make_record

        r = make_record(gate_entry(), 2.0, 1.5, 2.5, "reproduced")
        seeds = lambda v, s: Metric(value=v, lo=v, hi=v, n=len(s), unit="pp", samples=s, over="seeds", eval_se=0.1)  # noqa: E731
        ms = {names.stage_accuracy("a", "mean"): seeds(40.0, [39.0, 41.0]),
              names.gain("one"): seeds(2.0, [1.0, 3.0]), names.train_time_saved("one"): seeds(50.0, [49.0, 51.0]),
              names.train_rate("step_samples_per_s", "b"): Metric(value=300.0, unit="samples/s"), **metrics}
        return r.model_copy(update={"config": {"params": {"ablation": ROWS[:2]}}, "metrics": ms})

    def test_rows_in_order_with_seed_intervals(self):
        from cliprepro import ablation as table

        text = table.table(self._record())
        lines = text.splitlines()
        assert lines[2].startswith("| base") and lines[3].startswith("| one")
        assert "40 [" in lines[2] and "2 [" in lines[3] and "50 [" in lines[3] and "300" in lines[3]
        assert "(n=2)" in lines[3]

    def test_no_rows_no_table(self):
        from cliprepro import ablation as table

        r = self._record()
        assert table.table(r.model_copy(update={"config": {}})) == ""
