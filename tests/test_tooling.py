"""Packaging: one bootstrap venv keyed by dependencies; thin tox envs, one per suite; README."""
from __future__ import annotations

import configparser
import importlib.util
import re

import pytest

from tests.conftest import REPO


def _bootstrap(root):
    spec = importlib.util.spec_from_file_location("bootstrap", REPO / "tools" / "bootstrap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.ROOT = root
    return mod


class TestNltkTagger:
    """The bootstrap finds NLTK's tagger: the cache, a download once, a sibling shared/, or none."""

    @staticmethod
    def setup(tmp_path, monkeypatch, *, cached=False, shared=False, downloads=False):
        root = tmp_path / "clone" / "main"
        root.mkdir(parents=True)
        boot = _bootstrap(root)
        venv_root = tmp_path / "cache"
        monkeypatch.setenv("CLIPREPRO_VENV_ROOT", str(venv_root))
        target = venv_root / "venv-x"
        target.mkdir(parents=True)
        if cached:
            (venv_root / "nltk_data" / boot.NLTK_TAGGER).mkdir(parents=True)
        if shared:
            (root.parent / "shared" / "nltk_data" / boot.NLTK_TAGGER).mkdir(parents=True)
        calls = []

        def fake_run(argv, **kw):  # NLTK's downloader, offline unless told otherwise
            calls.append(argv)
            if downloads:
                (venv_root / "nltk_data" / boot.NLTK_TAGGER).mkdir(parents=True)
            return None

        monkeypatch.setattr(boot.subprocess, "run", fake_run)
        return boot, target, venv_root, root, calls

    def test_cached_tagger_is_used_without_a_download(self, tmp_path, monkeypatch):
        boot, target, venv_root, _, calls = self.setup(tmp_path, monkeypatch, cached=True)
        assert boot.nltk_data(target) == str(venv_root / "nltk_data") and calls == []

    def test_downloaded_once_with_nltks_downloader(self, tmp_path, monkeypatch, capsys):
        boot, target, venv_root, _, calls = self.setup(tmp_path, monkeypatch, downloads=True)
        assert boot.nltk_data(target) == str(venv_root / "nltk_data")
        assert calls[0][1:4] == ["-m", "nltk.downloader", "-d"] and calls[0][-1] == "averaged_perceptron_tagger_eng"
        assert "installing NLTK's English POS tagger" in capsys.readouterr().err

    def test_offline_uses_the_sibling_shared_folder(self, tmp_path, monkeypatch, capsys):
        boot, target, _, root, calls = self.setup(tmp_path, monkeypatch, shared=True)
        assert boot.nltk_data(target) == str(root.parent / "shared" / "nltk_data")
        assert "could not download it" in capsys.readouterr().err and len(calls) == 1

    def test_plain_clone_offline_says_how_and_tries_once(self, tmp_path, monkeypatch, capsys):
        boot, target, _, _, calls = self.setup(tmp_path, monkeypatch)
        assert boot.nltk_data(target) is None
        assert "syntax suites will be skipped until you run" in capsys.readouterr().err
        assert boot.nltk_data(target) is None and len(calls) == 1  # not again on the next command


class TestBootstrap:
    def test_key_follows_pyproject_and_constraints(self, tmp_path):
        for name in ("pyproject.toml", "constraints.txt"):
            (tmp_path / name).write_text((REPO / name).read_text())
        boot = _bootstrap(tmp_path)
        key = boot.venv_key()
        assert boot.venv_key() == key
        (tmp_path / "constraints.txt").write_text((REPO / "constraints.txt").read_text() + "x==1\n")
        assert boot.venv_key() != key

    def test_requirements_come_from_pyproject(self, tmp_path):
        reqs = _bootstrap(REPO).requirements()
        assert "open_clip_torch" in reqs and "requests" in reqs and "pytest" in reqs
        assert "deepspeed" in reqs and "pyflakes" in reqs and "scikit-learn" in reqs  # the zero extra: runners/training/zero.py


class TestTox:
    def test_every_env_is_thin_and_every_suite_has_one(self):
        ini = configparser.ConfigParser(interpolation=None)
        ini.read(REPO / "tox.ini")
        assert ini["testenv"]["skip_install"] == "true" and ini["testenv"]["deps"].strip() == ""
        suites = {p.stem for p in (REPO / "suites").glob("*.yaml")}
        envs = {s.split(":", 1)[1] for s in ini.sections() if s.startswith("testenv:")}
        assert suites | {"proxy", "report"} == envs
        for section in ini.sections():
            if section.startswith("testenv:"):
                assert "tools/bootstrap.py exec" in ini[section]["commands"]
                assert "deps" not in ini[section] and "env_dir" not in ini[section]
        for suite in suites:
            assert f"cliprepro run {suite} " in ini[f"testenv:{suite}"]["commands"]


def test_readme_starts_with_exactly_two_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2 and text.index("```bash") < text.index("\n## ")
    assert commands[0].startswith("bin/cliprepro run all --scale ci") and commands[1].startswith("bin/test")


class TestTrainVsBare:
    """tools/train_vs_bare.py trains a suite's own proxy stage from scratch, never a made-up one
    (its run is the benchmark itself, about a minute: not a unit test)."""

    def _tool(self):
        spec = importlib.util.spec_from_file_location("train_vs_bare", REPO / "tools" / "train_vs_bare.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    @pytest.mark.parametrize("suite, stage, said", [
        ("clipa_strategies", "nope", "known: base, img_resize"),
        ("clipa_l16", "finetune", "starts from another stage"),
        ("eva_clip_ablation", "mim", "starts from another stage"),
        ("flip_speedup", "base", "no proxy scale that trains"),
        ("flip_flops", "base", "no proxy scale that trains"),
    ])
    def test_refuses_what_it_cannot_train_alone(self, tmp_path, suite, stage, said):
        with pytest.raises(SystemExit, match=said):
            self._tool()._argv(suite, stage, 1, tmp_path)
