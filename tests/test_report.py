"""Reports: re-judging, stale, rejection, pooling, and byte-identical rendering across processes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cliprepro import record as rec
from cliprepro.ledger import build_ledger, pool
from cliprepro.spec import ExpectedFile
from tests.conftest import REPO, gate_entry, make_record


def _expected(entry) -> dict[str, ExpectedFile]:
    return {"flip_speedup": ExpectedFile(suite="flip_speedup", entries=[entry])}


class TestLedger:
    def test_agreeing_record_is_accepted_and_pooled(self):
        e = gate_entry()
        r1 = make_record(e, 1.8, 1.7, 1.9, "reproduced", started="2026-01-01T00:00:00+00:00",
                         samples=[1.7, 1.75, 1.8, 1.85, 1.9, 1.8])
        r2 = make_record(e, 1.2, 1.1, 1.3, "not_reproduced", started="2026-01-02T00:00:00+00:00",
                         samples=[1.1, 1.15, 1.2, 1.25, 1.3, 1.2])
        ledger = build_ledger([("a1", r1), ("a2", r2)], [], _expected(e))
        assert not ledger.rejected
        [p] = pool(ledger.rows, _expected(e))
        assert (p.records, p.n, p.latest) == (2, 12, "a2")
        assert p.value == 1.5  # the median of all 12 rounds, judged anew: not a vote of 1 pass, 1 fail
        # one record passed, one failed; the pooled interval straddles the threshold 1.5: neither
        assert p.verdict == "inconclusive" and p.lo < 1.5 < p.hi

    def test_a_resubmitted_record_does_not_change_the_pool(self):
        e = gate_entry()
        r = make_record(e, 1.8, 1.7, 1.9, "reproduced", samples=[1.7, 1.75, 1.8, 1.85, 1.9, 1.8])
        once = pool(build_ledger([("a1", r)], [], _expected(e)).rows, _expected(e))
        twice = pool(build_ledger([("a1", r), ("a1", r)], [], _expected(e)).rows, _expected(e))
        assert once == twice and once[0].records == 1

    @pytest.mark.parametrize("other_seeds", [False, True])
    def test_the_same_seeds_of_the_same_recipe_count_once(self, other_seeds):
        """A CI build beside the committed record of the same seed is one measurement, not two."""
        from cliprepro.layout import Layout

        layout = Layout.find(str(REPO))
        path = sorted(layout.results.glob("clipa_l16__proxy__run__*.json"))[-1]
        committed = rec.read(path)[1]
        # judged against the entries it was made with: a recalibration since makes it stale, not unpoolable
        expected = {"clipa_l16": layout.load("clipa_l16")[1].model_copy(update={"entries": committed.expected})}
        build = committed.model_copy(update={"provenance": {**committed.provenance, "started_utc": "2099-01-01"}})
        seeds = committed.config["params"]["seeds"]
        n = 2 * len(seeds) if other_seeds else len(seeds)
        if other_seeds:  # as many seeds, none shared: twice the measurements
            params = {**committed.config["params"], "seeds": [s + 100 for s in seeds]}
            build = build.model_copy(update={"config": {**committed.config, "params": params}})
        ledger = build_ledger([("committed", committed), ("build", build)], [], expected)
        [p] = [x for x in pool(ledger.rows, expected) if x.claim == "clipa_l16_proxy_finetune_gain"]
        assert (p.records, p.n) == (2, n) and p.latest == "build"

    def test_device_classes_pool_apart(self):
        e = gate_entry()
        r1 = make_record(e, 1.8, 1.7, 1.9, "reproduced", device="cuda: NVIDIA H100 80GB HBM3")
        r2 = make_record(e, 1.8, 1.7, 1.9, "reproduced", device="cuda: NVIDIA H200")
        pools = pool(build_ledger([("a1", r1), ("a2", r2)], [], _expected(e)).rows, _expected(e))
        assert [(p.device_class, p.records) for p in pools] == [
            ("cuda: NVIDIA H100 80GB HBM3", 1), ("cuda: NVIDIA H200", 1)]

    def test_a_newer_record_that_measured_nothing_is_said_not_dropped(self):
        e = gate_entry()
        old = make_record(e, 1.8, 1.7, 1.9, "reproduced", samples=[1.8] * 9)
        new = make_record(e, float("nan"), float("nan"), float("nan"), "error", started="2026-06-01T00:00:00+00:00")
        [p] = pool(build_ledger([("old", old), ("new", new)], [], _expected(e)).rows, _expected(e))
        assert p.verdict == "reproduced" and p.latest == "new"  # judged on what was measured
        assert "1 of 2 record(s) measured nothing, not pooled: error; the newest, new, is error" in p.reason

    def test_wrong_stored_verdict_is_rejected(self):
        e = gate_entry()
        bad = make_record(e, 1.2, 1.1, 1.3, "reproduced")  # lower bound 1.1 < threshold 1.5
        ledger = build_ledger([("bad", bad)], [], _expected(e))
        assert ledger.rows == [] and "re-judged 'not_reproduced'" in ledger.rejected[0].reason

    def test_record_judged_against_older_entry_is_stale_and_not_pooled(self):
        old, new = gate_entry(value=2.0), gate_entry(value=3.0)
        r = make_record(old, 1.8, 1.7, 1.9, "reproduced")
        ledger = build_ledger([("s", r)], [], _expected(new))
        assert [row.stale for row in ledger.rows] == [True]
        assert pool(ledger.rows, _expected(new)) == []

    def test_calibration_record_reused_as_check_is_rejected(self):
        e = gate_entry(calibration=["c1", "c2", "c3"])
        r = make_record(e, 1.8, 1.7, 1.9, "reproduced")
        ledger = build_ledger([("c1", r)], [], _expected(e))
        assert ledger.rows == [] and "reused as a check" in ledger.rejected[0].reason

    def test_invalid_files_are_listed_with_reason(self):
        ledger = build_ledger([], [("flip_speedup__gpu__run__0123.json", "schema_version: must be 1 or 2"),
                                   ("x.json", "bad")], {})
        assert [(x.suite, x.record, x.reason) for x in ledger.rejected] == [
            ("(unknown suite)", "x.json", "bad"),
            ("flip_speedup", "flip_speedup__gpu__run__0123.json", "schema_version: must be 1 or 2")]

    def test_rejected_records_go_to_their_own_suite_page_only(self):
        """Suite names that contain each other (clipa_l16 in clipa_l16_i37_t8) do not mix."""
        ledger = build_ledger([], [("clipa_l16_i37_t8__proxy__run__ab.json", "bad")], {})
        assert [x.suite for x in ledger.rejected] == ["clipa_l16_i37_t8"]

    def test_incomplete_record_is_listed_and_never_pooled(self):
        e = gate_entry()
        r = make_record(e, 1.8, 1.7, 1.9, "reproduced").model_copy(
            update={"status": "error", "message": "ran 900 s, over 1.5x the declared runtime_s"})
        ledger = build_ledger([("late", r)], [], _expected(e))
        assert ledger.rows == [] and pool(ledger.rows, _expected(e)) == []
        assert [(x.record, x.reason) for x in ledger.incomplete] == [
            ("late", "error: ran 900 s, over 1.5x the declared runtime_s")]

    def test_schema1_record_is_rejudged_by_todays_rule_not_rejected(self):
        """A one-seed gain judged by schema 1's bootstrap is re-judged with the seed rule."""
        from cliprepro.claims import Direction

        e = Direction(claim="d", scale="proxy", metric="gain_x", kind="direction", margin=0.0, unit="pp",
                      role="finding", source="s", source_kind="primary")
        r = make_record(e, 2.0, 1.0, 3.0, "reproduced").model_copy(update={"schema_version": 1})
        r.metrics["gain_x"] = r.metrics["gain_x"].model_copy(update={"over": "seeds", "n": 1})
        ledger = build_ledger([("old", r)], [], _expected(e))
        assert not ledger.rejected
        [row] = ledger.rows
        assert row.result.verdict == "inconclusive" and "schema 1 record said reproduced" in row.result.reason


def _throughput_record(started: str) -> rec.Record:
    e = gate_entry(claim="flip_proxy_mask50_speedup", metric="speedup_step_mask50")
    r = make_record(e, 1.9, 1.8, 2.0, "reproduced", started=started)
    points = [{"mode": "step", "arm": a, "patch_dropout": p, "batch_size": 8, "img_per_s_median": v,
               "fwd_flops_per_sample": f, "tokens_first_block_planned": t, "model": "m"}
              for a, p, v, f, t in (("mask0", 0.0, 10.0, 6.0e9, 257), ("mask50", 0.5, 19.0, 3.0e9, 129))]
    return r.model_copy(update={"points": points})


def _digest_reports(root: Path, env_extra: dict[str, str]) -> str:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(root), "report"], env=env,
                   check=True, capture_output=True)
    digest = hashlib.sha256()
    for path in sorted((root / "reports").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


class TestRender:
    def test_byte_identical_across_processes_time_zones_and_hash_seeds(self, root_copy: Path):
        for day in ("01", "02"):
            rec.write(_throughput_record(f"2026-01-{day}T00:00:00+00:00"), root_copy / "results")
        a = _digest_reports(root_copy, {"TZ": "UTC", "PYTHONHASHSEED": "1"})
        b = _digest_reports(root_copy, {"TZ": "Asia/Kolkata", "PYTHONHASHSEED": "987"})
        assert a == b
        page = (root_copy / "reports" / "flip_speedup.md").read_text()
        assert "flip_speedup_throughput.png" in page and "1.9 [1.8, 2] (n=9)" in page

    def test_a_record_check_rejects_is_listed_with_its_reason_and_not_pooled(self, root_copy: Path):
        r = _throughput_record("2026-01-01T00:00:00+00:00")
        r = r.model_copy(update={"provenance": {**r.provenance, "git": {"commit": "0" * 40, "dirty": True}}})
        rid, _ = rec.write(r, root_copy / "results")
        _digest_reports(root_copy, {})
        board = (root_copy / "reports" / "README.md").read_text()
        rejected = board.split("## Rejected records")[1]
        assert rid in rejected and "provenance.git.dirty is not false" in rejected
        row = next(line for line in board.splitlines() if "flip_proxy_mask50_speedup" in line and "| proxy" in line)
        assert rid not in row

    def test_tampered_record_is_rejected_in_the_leaderboard(self, root_copy: Path):
        _rid, path = rec.write(_throughput_record("2026-01-01T00:00:00+00:00"), root_copy / "results")
        data = json.loads(path.read_text())
        data["results"][0]["value"] = 2.5
        path.write_text(json.dumps(data))
        _digest_reports(root_copy, {})
        board = (root_copy / "reports" / "README.md").read_text()
        assert "does not match the file name" in board


@pytest.mark.parametrize("value,expected", [(None, "—"), (1.23456, "1.2346"), (1844.91, "1844.9")])
def test_number_format(value, expected):
    from cliprepro.report import _num
    assert _num(value) == expected


class TestAccuracyPlot:
    """Accuracy vs training compute from a train record's stage points (pure of the records)."""

    @staticmethod
    def _train_record(points: list[dict]):
        e = gate_entry(claim="g", metric="gain_x", unit="pp", null_value=0.0, value=5.0)
        r = make_record(e, 4.0, 3.0, 5.0, "reproduced", suite="clipa_strategies")
        return r.model_copy(update={"points": points})

    def test_no_stage_points_no_plot(self):
        from cliprepro.plots import accuracy_plot

        assert accuracy_plot([("a", self._train_record([{"arm": "x"}]))]) is None

    def test_same_records_same_bytes(self):
        from cliprepro.plots import accuracy_plot

        pts = [{"stage": s, "seed": k, "train_gflop": g, "acc1_mean": a}
               for s, g, a in (("base", 800.0, 50.0), ("img_resize", 370.0, 55.0)) for k in (0, 1)]
        one = accuracy_plot([("a", self._train_record(pts))])
        assert one is not None and one[:8] == b"\x89PNG\r\n\x1a\n"
        assert one == accuracy_plot([("a", self._train_record(list(reversed(pts))))])

    def test_uniform_guess_line_and_stage_table_note(self):
        from cliprepro.ledger import Row
        from cliprepro.plots import accuracy_plot
        from cliprepro.report import _points

        pts = [{"stage": "base", "seed": 0, "train_gflop": 800.0, "acc1_mean": 50.0}]
        plain = self._train_record(pts)
        guessed = plain.model_copy(update={"inputs": {"chance_acc1_mean_pct": 25.625}})
        assert accuracy_plot([("a", plain)]) != accuracy_plot([("a", guessed)])
        assert "a uniform guess scores 25.625 on acc1_mean" in _points([Row("a", guessed, guessed.results[0], False)])
        assert "uniform guess" not in _points([Row("a", plain, plain.results[0], False)])


class TestBoard:
    """The leaderboard has a row for every claim of expected/, measured or not."""

    def _board(self, records):
        from cliprepro.board import board_rows
        from cliprepro.layout import Layout

        layout = Layout.find(str(REPO))
        suites = {n: layout.load(n)[0] for n in layout.suite_names()}
        expected = {n: layout.load(n)[1] for n in layout.suite_names()}
        return board_rows(suites, expected, build_ledger(records, [], expected)), expected

    def test_every_claim_has_a_row_and_unmeasured_ones_say_what_they_need(self):
        rows, expected = self._board([])
        assert {(r.suite, r.claim, r.scale) for r in rows} == {
            (name, *e.key()) for name, f in expected.items() for e in f.entries}
        assert all(r.verdict == "not measured" and r.needs for r in rows)
        gpu = [r for r in rows if r.scale == "gpu"]
        assert gpu and all("CUDA" in r.needs for r in gpu)
        weights = [r for r in rows if r.suite == "clipa_l16" and r.scale == "paper"]
        assert weights and all("weights.clipa_l16_i17_t16" in r.needs and "imagenet_val" in r.needs for r in weights)

    def test_a_measured_claim_shows_its_pool(self):
        layout_rows, expected = self._board([])
        entry = next(e for e in expected["flip_flops"].entries if e.kind == "exact")
        r = make_record(entry, entry.value, entry.value, entry.value, "reproduced", suite="flip_flops")
        r = r.model_copy(update={"metrics": {entry.metric: rec.Metric(value=entry.value, lo=entry.value,
                                                                       hi=entry.value, n=1, over="exact")}})
        rows, _ = self._board([("x1", r)])
        [row] = [x for x in rows if (x.suite, x.claim, x.scale) == ("flip_flops", *entry.key())]
        assert (row.verdict, row.records, row.measured, row.latest, row.needs) == (
            "reproduced", 1, entry.value, "x1", "")

    def test_csv_and_json_carry_the_same_rows(self):
        import csv
        import io

        from cliprepro.board import COLUMNS, to_csv, to_json

        rows, _ = self._board([])
        parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
        assert len(parsed) == len(rows) and tuple(parsed[0]) == COLUMNS
        data = json.loads(to_json(rows))
        assert data["columns"] == list(COLUMNS) and len(data["rows"]) == len(rows)
        assert [(x["suite"], x["claim"], x["scale"]) for x in parsed] == [
            (x["suite"], x["claim"], x["scale"]) for x in data["rows"]]


def test_the_committed_leaderboard_has_a_row_for_every_claim():
    """reports/ is re-rendered with every change to expected/ (bin/cliprepro report)."""
    from cliprepro.layout import Layout

    layout = Layout.find(str(REPO))
    rows = json.loads((REPO / "reports" / "leaderboard.json").read_text())["rows"]
    claims = {(n, *e.key()) for n in layout.suite_names() for e in layout.load(n)[1].entries}
    assert {(r["suite"], r["claim"], r["scale"]) for r in rows} == claims
