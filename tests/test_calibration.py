"""Calibration: expected/ is recomputed from the committed calibration records it cites."""
from __future__ import annotations

import pytest

import math
import re

from cliprepro.calibration import contrast_spread, expected_from_records, load_calibration, runs_needed
from cliprepro.layout import Layout
from tests.conftest import REPO


def _gate_entries():
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        for entry in layout.load(name)[1].entries:
            if entry.kind == "calibrated_effect":
                yield name, entry


class TestCommittedCalibration:
    @pytest.mark.parametrize("suite,entry", list(_gate_entries()), ids=lambda x: getattr(x, "claim", x))
    def test_expected_recomputed_from_its_records(self, suite, entry):
        assert entry.calibration, f"{entry.claim} is not calibrated"
        records = load_calibration(Layout.find(str(REPO)))
        for rid in entry.calibration:
            assert records[rid].record_type == "calibration" and records[rid].suite == suite
        cal = expected_from_records(entry, records)
        assert (cal.value, cal.spread, cal.halfwidth) == (
            entry.value, entry.calibration_spread, entry.planned_halfwidth)


def _borrowed_spreads():
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        for entry in layout.load(name)[1].entries:
            spread = getattr(entry, "seed_spread", None)
            if spread is not None and "contrast_spread" in spread.source:
                yield name, entry


class TestBorrowedSeedSpreads:
    """A finding's seed spread taken from another suite's calibration runs is what
    calibration.contrast_spread gives on the records its source cites (it cannot drift)."""

    def test_some_entries_borrow(self):
        assert len(list(_borrowed_spreads())) >= 10

    @pytest.mark.parametrize("suite,entry", list(_borrowed_spreads()), ids=lambda x: getattr(x, "claim", x))
    def test_recomputed_from_cited_records(self, suite, entry):
        records = load_calibration(Layout.find(str(REPO)))
        ids = re.findall(r"\b[0-9a-f]{16}\b", entry.seed_spread.source)
        assert len(ids) >= 3 and all(records[i].record_type == "calibration" for i in ids)
        sd, df, names = contrast_spread([records[i] for i in ids])
        factor = math.sqrt(2) if "x sqrt(2)" in entry.seed_spread.source else 1.0
        assert (round(sd * factor, 2), df) == (entry.seed_spread.sd, entry.seed_spread.df)
        assert f"{len(names)} one-seed paired contrasts" in entry.seed_spread.source


def _own_spreads():
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        for entry in layout.load(name)[1].entries:
            spread = getattr(entry, "seed_spread", None)
            if entry.role == "finding" and spread is not None and "metric_seed_spread" in spread.source:
                yield name, entry


class TestOwnSeedSpreads:
    """A finding of a suite whose CI run trains one seed borrows the per-seed spread of its metric
    from the suite's own calibration runs: recomputed here, so it cannot drift."""

    def test_g14_soup_findings_borrow(self):
        assert {name for name, _ in _own_spreads()} == {"g14_soup"} and len(list(_own_spreads())) == 5

    @pytest.mark.parametrize("suite,entry", list(_own_spreads()), ids=lambda x: getattr(x, "claim", x))
    def test_recomputed_from_cited_records(self, suite, entry):
        from cliprepro.calibration import metric_seed_spread

        records = load_calibration(Layout.find(str(REPO)))
        ids = re.findall(r"\b[0-9a-f]{16}\b", entry.seed_spread.source)
        assert len(ids) >= 3 and all(records[i].suite == suite and not records[i].negative_control for i in ids)
        sd, df = metric_seed_spread([records[i] for i in ids], entry.metric)
        assert (round(sd, 4), df) == (entry.seed_spread.sd, entry.seed_spread.df)

    def test_pooled_within_runs_not_across(self):
        from types import SimpleNamespace

        from cliprepro.calibration import metric_seed_spread

        def run(*values):  # two runs far apart: their means differ, their own spreads are 1
            return SimpleNamespace(metrics={"m": SimpleNamespace(n=len(values), samples=list(values))})
        sd, df = metric_seed_spread([run(0.0, 1.0, 2.0), run(100.0, 101.0, 102.0)], "m")
        assert (sd, df) == (1.0, 4)


@pytest.mark.parametrize("runtime_s,runs", [(10, 5), (59.9, 5), (60, 3), (600, 3)])
def test_runs_needed(runtime_s, runs):
    assert runs_needed(runtime_s) == runs


GOOD_PARAMS = {"stages": [{"name": "a", "epochs": 2}], "seeds": [1000000, 1000001]}


def calibration_record(**over):
    from cliprepro.record import Record

    fields = dict(schema_version=2, record_type="calibration", suite="s", suite_version=1, scale="proxy",
                  status="completed", expected=[], results=[], config={"params": GOOD_PARAMS},
                  provenance={"git": {"commit": "abc", "dirty": False},
                              "calibration": {"seed_base": 1000000, "run_index": 0, "fresh_cache": True}},
                  inputs={"training_path": "fp1"},
                  points=[{"stage": "a", "seed": 1000000, "trained": True},
                          {"stage": "b", "seed": 1000000, "trained": None}])  # epochs 0: nothing to train
    fields.update(over)
    return Record(**fields)


class TestRecordProblems:
    """validate refuses a cited calibration record that cannot stand behind a gate."""
    NOW = {"stages": [{"name": "a", "epochs": 2}], "seeds": [0, 1]}  # a check's seeds: not compared

    def test_a_fresh_clean_complete_record_passes(self):
        from cliprepro.calibration import record_problems

        assert record_problems(calibration_record(), self.NOW, "fp1") == []

    @pytest.mark.parametrize("over,problem", [
        (dict(record_type="run"), "not a calibration run"),
        (dict(status="error"), "did not complete"),
        (dict(provenance={"git": {"commit": "abc", "dirty": True},
                          "calibration": {"fresh_cache": True}}), "not known clean"),
        (dict(provenance={"git": {"commit": None, "dirty": None},
                          "calibration": {"fresh_cache": True}}), "not known clean"),
        (dict(provenance={"git": {"commit": "abc", "dirty": False}}), "fresh stage cache"),
        (dict(points=[{"stage": "a", "seed": 1000000, "trained": False}]), "reused trained stages a/seed1000000"),
        (dict(points=[{"stage": "a", "seed": 1000000}]), "does not say whether"),
        (dict(config={"params": {"stages": [{"name": "a", "epochs": 3}], "seeds": [5]}}), "other proxy params"),
        (dict(inputs={"training_path": "fp0"}), "training path fp0"),
        (dict(inputs={}), "training path None"),
    ])
    def test_each_defect_is_named(self, over, problem):
        from cliprepro.calibration import record_problems

        problems = record_problems(calibration_record(**over), self.NOW, "fp1")
        assert len(problems) == 1 and problem in problems[0], problems

    def test_a_soup_point_is_made_from_trained_stages_not_trained(self):
        from cliprepro.calibration import record_problems

        points = [{"stage": "a", "seed": 1000000, "trained": True}, {"stage": "soup", "seed": 1000000, "soup_of": ["a"]}]
        assert record_problems(calibration_record(points=points), self.NOW, "fp1") == []

    def test_a_suite_without_training_has_no_training_path(self):
        from cliprepro.calibration import record_problems

        assert record_problems(calibration_record(inputs={}, points=[]), self.NOW, None) == []


class TestCalibrationSeeds:
    def test_a_calibration_shares_no_seed_with_a_check_or_another_calibration(self):
        from cliprepro.calibration import SEED_BASE_MIN, draw_seed_base
        from cliprepro.runflow import calibration_seeds

        bases = {draw_seed_base() for _ in range(50)}
        assert len(bases) == 50 and min(bases) >= SEED_BASE_MIN
        runs = [calibration_seeds(b, i, 3) for b in bases for i in range(5)]
        seeds = [s for run in runs for s in run]
        assert len(set(seeds)) == len(seeds) and min(seeds) >= SEED_BASE_MIN

    @pytest.mark.parametrize("ci_seeds,per_run", [(1, 3), (2, 3), (3, 3), (5, 5)])
    def test_a_calibration_run_trains_enough_seeds_to_measure_the_spread(self, ci_seeds, per_run):
        from cliprepro.runflow import calibration_seeds

        runs = [calibration_seeds(2_000_000, i, ci_seeds) for i in range(3)]
        assert [len(r) for r in runs] == [per_run] * 3
        assert len({s for r in runs for s in r}) == 3 * per_run


class TestPlannedForTheCiRun:
    """A gate over seeds is planned (n, threshold) for the seeds a CI run trains, not the calibration's."""

    def test_planned_n_and_threshold_follow_the_ci_seeds(self):
        from cliprepro.calibration import derive, load_calibration
        from cliprepro.claims import pass_probability
        from cliprepro.layout import Layout

        layout = Layout.find(str(REPO))
        _suite, exp = layout.load("clipa_l16")
        entry = next(e for e in exp.entries if e.kind == "calibrated_effect")
        records = load_calibration(layout)
        control = entry.control_calibration.record
        got = {n: derive(entry, entry.calibration, control, records, ci_seeds=n) for n in (1, 3)}
        assert [got[n]["planned_n"] for n in (1, 3)] == [1, 3]
        # a one-seed run averages no seeds: its evaluation s.e. is planned at the bound sqrt(3) x
        # the three-seed calibration's (independent evaluation errors)
        assert got[1]["eval_se"] == round(got[3]["eval_se"] * math.sqrt(3), 4) and got[3]["eval_se"] > 0
        # one seed: a wider interval, so the control's upper bound clears only a higher threshold
        assert got[1]["kept_fraction"] > got[3]["kept_fraction"]
        for n in (1, 3):
            p = pass_probability(entry.model_copy(update=got[n]))
            assert p.control_fails >= 0.95, n
