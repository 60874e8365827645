"""Progress you can watch: a labelled tqdm bar per unit on a terminal, one line per unit elsewhere,
and clip_benchmark's unlabelled bars silenced."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cliprepro import progress


class TestUnit:
    def test_off_a_terminal_one_line_per_unit_with_its_scope(self, capsys, monkeypatch):
        monkeypatch.setattr(progress, "interactive", lambda: False)
        with progress.scope("clipa_l16", "proxy"):
            with progress.unit("stage pretrain seed 1", 6, "step") as u:
                u.set(3)
                u.update(3)
        with progress.unit("outside", None, "set") as u:
            u.update()
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2
        assert err[0].startswith("  clipa_l16 · proxy · stage pretrain seed 1: 6/6 step in ")
        assert err[1].startswith("  outside: 1 set in ")

    def test_on_a_terminal_a_labelled_bar_with_eta(self, capsys, monkeypatch):
        monkeypatch.setattr(progress, "interactive", lambda: True)
        with progress.scope("flip_speedup", "proxy"):
            with progress.unit("step: 3 arms x 9 rounds", 27, "block") as u:
                for _ in range(27):
                    u.update()
        err = capsys.readouterr().err
        assert "flip_speedup · proxy · step: 3 arms x 9 rounds" in err and "27/27 block" in err
        assert "<" in err  # elapsed<remaining: the ETA

    @pytest.mark.parametrize("tty,columns,interactive", [(True, 120, True), (True, 0, False), (False, 120, False)])
    def test_a_terminal_without_a_size_gets_lines(self, monkeypatch, tty, columns, interactive):
        """tqdm draws nothing on a pty of 0 x 0 (e.g. `script` run without a terminal): lines instead."""
        monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: tty, raising=False)
        monkeypatch.setattr(progress, "_columns", lambda: columns)
        assert progress.interactive() is interactive

    def test_a_failed_unit_says_so(self, capsys, monkeypatch):
        monkeypatch.setattr(progress, "interactive", lambda: False)
        with pytest.raises(RuntimeError):
            with progress.unit("stage x seed 0", 4):
                raise RuntimeError("boom")
        assert "(failed)" in capsys.readouterr().err

    def test_scopes_nest_and_unwind(self):
        with progress.scope("a"):
            with progress.scope("b", "c"):
                assert progress.prefix() == ("a", "b", "c")
            assert progress.prefix() == ("a",)
        assert progress.prefix() == ()

    def test_suites_at_once_keep_their_own_scope_and_carry_it_to_a_pool(self):
        """Two suites run in threads at once (cliprepro.cli run all); each hands its units to the
        shared trainer pool (runners.training.stage), whose threads label them with that suite."""
        barrier = threading.Barrier(2)
        pool = ThreadPoolExecutor(max_workers=1)
        seen: dict[str, tuple[str, ...]] = {}

        def suite(name: str) -> None:
            with progress.scope(name, "proxy"):
                barrier.wait()  # both scopes open at once
                seen[name] = pool.submit(progress.carry(progress.prefix)).result()

        threads = [threading.Thread(target=suite, args=(n,)) for n in ("clipa_l16", "g14_soup")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pool.shutdown()
        assert seen == {"clipa_l16": ("clipa_l16", "proxy"), "g14_soup": ("g14_soup", "proxy")}


def test_clip_benchmark_bars_are_replaced_by_ours():
    from clip_benchmark.metrics import zeroshot_classification as zc
    from clip_benchmark.metrics import zeroshot_retrieval as zr

    from runners.upstream.compat import quiet_clip_benchmark_bars

    quiet_clip_benchmark_bars()
    items = [1, 2]
    assert zc.tqdm(items) is items and zr.tqdm(items) is items
