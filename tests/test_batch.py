"""cliprepro.batch: `run all` starts the proxy training suites together on the shared trainers,
judges their runtime as one, and runs every other suite after them, alone."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cliprepro import batch
from cliprepro.layout import Layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def layout():
    return Layout.find(str(ROOT))


def _ci_scales(layout: Layout) -> dict[str, str]:
    return {n: layout.load(n)[0].ci_scale for n in layout.suite_names()}


class TestTogether:
    def test_the_proxy_training_suites_of_a_ci_run(self, layout, monkeypatch):
        monkeypatch.setattr(batch, "cuda_available", lambda: False)
        scales = _ci_scales(layout)
        group = batch.together(layout, layout.suite_names(), scales)
        assert {"clipa_l16", "g14_soup", "eva_clip_ablation", "flip_mask_ablation"} <= set(group)
        for timed_or_exact in ("flip_speedup", "clipa_speed", "eva_clip_speed", "flip_flops", "g14_params"):
            assert timed_or_exact not in group
        assert group == [n for n in layout.suite_names() if n in group], "in the order asked"

    @pytest.mark.parametrize("names,cuda,want", [
        (["clipa_l16"], False, []),  # one suite: nothing to run beside it
        (["clipa_l16", "g14_soup"], True, []),  # a GPU trains one stage at a time
        (["clipa_l16", "g14_soup"], False, ["clipa_l16", "g14_soup"]),
    ])
    def test_table(self, layout, monkeypatch, names, cuda, want):
        monkeypatch.setattr(batch, "cuda_available", lambda: cuda)
        assert batch.together(layout, names, {n: "proxy" for n in names}) == want


class TestRunSuites:
    NAMES = ["clipa_l16", "flip_speedup", "g14_soup"]  # a timing suite between two training suites

    @pytest.fixture
    def calls(self, monkeypatch):
        calls: list[dict] = []
        lock = threading.Lock()

        def fake_execute(layout, name, scale, alongside=(), **kwargs):
            start = time.monotonic()
            time.sleep(0.3 if name == "clipa_l16" else 0.15)
            with lock:
                calls.append({"name": name, "alongside": alongside, "start": start, "end": time.monotonic()})
            return ("outcome", name)

        monkeypatch.setattr(batch, "execute", fake_execute)
        monkeypatch.setattr(batch, "cuda_available", lambda: False)
        return calls

    def test_training_suites_at_once_then_the_rest_alone(self, layout, calls, monkeypatch):
        judged = []
        monkeypatch.setattr(batch, "judge_runtime", lambda wall_s, runtime_s, field, pace: (
            judged.append((wall_s, runtime_s)) or "", {}))
        got = list(batch.run_suites(layout, self.NAMES, {n: "proxy" for n in self.NAMES}, claims=[]))
        assert got == [("outcome", "g14_soup"), ("outcome", "clipa_l16"), "", ("outcome", "flip_speedup")], \
            "the group's outcomes as each suite ends, then its runtime, then the rest"
        by = {c["name"]: c for c in calls}
        l16, g14, speed = by["clipa_l16"], by["g14_soup"], by["flip_speedup"]
        assert l16["start"] < g14["end"] and g14["start"] < l16["end"], "the training suites run at once"
        assert speed["start"] >= max(l16["end"], g14["end"]), "a timing suite runs alone, after them"
        assert l16["alongside"] == g14["alongside"] == ("clipa_l16", "g14_soup") and speed["alongside"] == ()
        declared = sum(layout.load(n)[0].scales["proxy"].runtime_s for n in ("clipa_l16", "g14_soup"))
        assert judged[0][1] == declared and 0.3 <= judged[0][0] < 0.45, "one runtime: the group's wall time"

    def test_the_groups_overrun_is_said(self, layout, calls, monkeypatch):
        monkeypatch.setattr(batch, "judge_runtime", lambda *a: ("ran 999 s, over 1.5x", {}))
        got = list(batch.run_suites(layout, self.NAMES, {n: "proxy" for n in self.NAMES}))
        assert "ran 999 s, over 1.5x" in got

    def test_a_suite_that_raises_raises_in_the_caller(self, layout, monkeypatch):
        def boom(layout, name, scale, alongside=(), **kwargs):
            raise ValueError(f"bad {name}")

        monkeypatch.setattr(batch, "execute", boom)
        monkeypatch.setattr(batch, "cuda_available", lambda: False)
        with pytest.raises(ValueError, match="bad clipa_l16"):
            list(batch.run_suites(layout, self.NAMES, {n: "proxy" for n in self.NAMES}))


class TestRunAll:
    @pytest.mark.parametrize("why,status", [("", 0), ("ran 999 s, over 1.5x the declared runtime_s 3000", 1)])
    def test_the_groups_runtime_decides_the_exit_status(self, monkeypatch, capsys, why, status):
        from cliprepro import cli

        monkeypatch.setattr(batch, "run_suites", lambda layout, names, scales, **kwargs: iter([why]))
        assert cli.main(["--root", str(ROOT), "run", "all", "--scale", "ci"]) == status
        out = capsys.readouterr().out
        assert (f"error: {why}" in out and "runtime: ran 999 s" in out) if why else "error" not in out
