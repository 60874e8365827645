"""The CLI: bad input exits 2 naming file and field (no traceback), plans, skips, exit status."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cliprepro.cli import main
from cliprepro.errors import InputError
from tests.conftest import REPO


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(root), *args],
                          env=env, capture_output=True, text=True)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


class TestList:
    """`list` shows each claim's newest run record as today's rules judge it, marked (*) when the
    leaderboard would not count that record."""

    def _row(self, root, capsys, claim):
        assert main(["--root", str(root), "list"]) == 0
        return next(x for x in capsys.readouterr().out.splitlines() if f" {claim} " in x)

    def test_a_counted_record(self, root_copy, capsys):
        assert self._row(root_copy, capsys, "clipa_l16_proxy_finetune_gain").endswith(" reproduced")

    @pytest.mark.parametrize("change, shown", [
        (lambda d: d["provenance"]["git"].update(dirty=True), "reproduced *"),      # a dirty tree: not counted
        (lambda d: d["results"][0].update(verdict="not_reproduced"), "error *"),    # disagrees with its own data
    ], ids=["dirty", "verdict-edited"])
    def test_a_newer_record_that_does_not_count(self, root_copy, capsys, change, shown):
        from cliprepro import record as rec

        path = sorted((root_copy / "results").glob("clipa_l16__proxy__run__*.json"))[-1]
        data = json.loads(path.read_text())
        data["provenance"]["started_utc"] = "2999-01-01T00:00:00+00:00"
        change(data)
        rec.write(rec.Record.model_validate(data), root_copy / "results")
        assert self._row(root_copy, capsys, "clipa_l16_proxy_finetune_gain").endswith(shown)


class TestClosedPipe:
    """A reader that stops early (`cliprepro list | head -1`) ends the command quietly, as a
    shell reports it (128 + SIGPIPE), with no traceback: long output or short (a plan, flushed only
    at the end when stdout is block-buffered)."""

    @pytest.mark.parametrize("args, unbuffered", [(["list"], True),  # long: fails mid-run
                                                  (["run", "flip_flops", "--scale", "paper", "--dry-run"], False)])
    def test_no_traceback(self, args, unbuffered):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe: block-buffered
        env.update({"PYTHONPATH": str(REPO), **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})})
        proc = subprocess.Popen([sys.executable, "-m", "cliprepro", "--root", str(REPO), *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()  # before the child has written anything: every write of it fails
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141, err
        assert "Traceback" not in err and "BrokenPipeError" not in err, err


class TestBadInputClasses:
    """Each class of bad input is refused with exit 2, naming the file, the field and what is
    allowed: by `validate` and by the run (a dry run included), never a traceback."""

    L16 = "suites/clipa_l16.yaml"

    @pytest.mark.parametrize("old,new,field,says", [
        ("{name: pretrain, model: ViT-TinyL-CL16,", "{name: pretrain, model: ViT-TinyL-CL61,",
         "scales.proxy.params.stages.0.model", "unknown model 'ViT-TinyL-CL61': not an open_clip config nor in model_configs/; did you mean ViT-TinyL-CL16"),
        ("script: vit_l16/i17_t16_pretrain.sh, model: ViT-L-16-CL16-GAP,",
         "script: vit_l16/i17_t16_pretrain.sh, model: ViT-L-16-CL16-GAB,",
         "scales.paper.params.stages.0.model", "unknown model 'ViT-L-16-CL16-GAB': not an open_clip config nor in model_configs/; did you mean "
         "ViT-L-16-CL16-GAP"),
        ("    runtime_s: 300 ", "    runtime_s: .inf", "scales.proxy.runtime_s", "finite"),
        ("    runtime_s: 300 ", "    runtime_s: .nan", "scales.proxy.runtime_s", "finite"),
        ("    runtime_s: 300 ", "    runtime_s: -5", "scales.proxy.runtime_s", "greater than 0"),
        ("    runtime_s: 300 ", "    runtime_s: 0", "scales.proxy.runtime_s", "greater than 0"),
        ('aug_cfg: {scale: "(0.4, 1.0)",', 'aug_cfg: {scales: "(0.4, 1.0)",', "aug_cfg",
         "aug_cfg.scales: not a field of open_clip's AugmentationCfg; allowed: scale"),
        ('aug_cfg: {scale: "(0.4, 1.0)",', 'aug_cfg: {scale: "(0.4, 1.0",', "aug_cfg", "is not a Python literal"),
        ('aug_cfg: {scale: "(0.4, 1.0)",', 'aug_cfg: {scale: "0.4",', "aug_cfg", "must be a pair of numbers"),
        ('color_jitter_prob: "0.8"', 'color_jitter_prob: "1.8"', "aug_cfg", "a probability in [0, 1]"),
    ])
    @pytest.mark.parametrize("how", ["validate", "dry-run"])
    def test_suite_file(self, root_copy, capsys, old, new, field, says, how):
        _edit(root_copy / self.L16, old, new)
        scale = "paper" if ("paper" in field or "aug_cfg" in field) else "proxy"
        argv = ["validate"] if how == "validate" else ["run", "clipa_l16", "--scale", scale, "--dry-run"]
        assert main(["--root", str(root_copy), *argv]) == 2
        err = capsys.readouterr().err
        assert self.L16 in err and field in err and says in err, err

    @pytest.mark.parametrize("config,key,says", [
        ("imagenet_val: {root}/nowhere\n", "imagenet_val", "no such folder"),
        ("weights:\n  clipa_l16_i17_t16_pretrain: {root}/nowhere.pt\n", "weights.clipa_l16_i17_t16_pretrain",
         "no such file"),
    ])
    @pytest.mark.parametrize("argv", [["validate"], ["run", "clipa_l16", "--scale", "paper"],
                                      ["run", "clipa_l16", "--scale", "auto", "--dry-run"]])
    def test_user_config_paths(self, root_copy, capsys, monkeypatch, config, key, says, argv):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        (root_copy / "cliprepro.yaml").write_text(config.format(root=root_copy))
        assert main(["--root", str(root_copy), *argv]) == 2
        err = capsys.readouterr().err
        assert f"cliprepro.yaml: {key}: {says}" in err
        assert not list((root_copy / "build").rglob("*.json"))  # nothing half-run

    @pytest.mark.parametrize("argv,says", [
        (["run", "flip_flops", "--scale", "proxy"], "no 'proxy' scale planned; this suite has paper"),
        (["run", "all", "--scale", "proxy", "--dry-run"], "`--scale ci` runs each suite at its CI scale"),
        (["run", "clipa_l16", "--scale", "gpu"], "this suite has paper, proxy"),
    ])
    def test_a_scale_the_suite_does_not_have(self, root_copy, capsys, argv, says):
        assert main(["--root", str(root_copy), *argv]) == 2
        err = capsys.readouterr().err
        assert "suites/" in err and "scales" in err and says in err
        assert not (root_copy / "build").exists()  # refused before anything ran

    def test_scale_ci_is_each_suites_own(self, root_copy, capsys):
        assert main(["--root", str(root_copy), "run", "all", "--scale", "ci", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "flip_flops @ paper (dry run" in out and "clipa_l16 @ proxy (dry run" in out

    @pytest.mark.parametrize("file,old,new,says", [
        ("expected/flip_speedup.yaml", "scale: gpu\n  metric: speedup_step_mask50", "scale: gpu\n  metric: speedup_step_mask05",
         "'speedup_step_mask05' is not a metric the gpu params of"),
        ("expected/clipa_speed.yaml", "metric: a100_days_l16_i17_t16", "metric: a100_days_l16_i17_t61",
         "did you mean a100_days_l16_i17_t16"),
        ("expected/clipa_l16.yaml", "metric: in1k_acc1_finetune", "metric: in1k_acc_finetune",
         "not a metric the paper params"),
    ])
    def test_a_metric_no_run_produces(self, root_copy, capsys, file, old, new, says):
        """A typo in a gpu- or paper-scale entry fails on a CPU, in CI, not first on a GPU."""
        _edit(root_copy / file, old, new)
        assert main(["--root", str(root_copy), "validate"]) == 2
        err = capsys.readouterr().err
        assert file in err and "metric" in err and says in err, err

    def test_unknown_model_dry_run_is_not_a_traceback(self, root_copy):
        _edit(root_copy / "suites/flip_speedup.yaml", "model: ViT-Proxy-256tok", "model: ViT-Proxy-265tok")
        proc = _cli(root_copy, "run", "flip_speedup", "--scale", "proxy", "--dry-run")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "did you mean" in proc.stderr


class TestBadInput:
    @pytest.mark.parametrize("file,old,new,field,allowed", [
        ("suites/flip_speedup.yaml", "runner: throughput", "runner: throughput\nspeed: 3",
         "speed", "allowed: ci_scale"),
        ("suites/flip_speedup.yaml", "runner: throughput", "runner: thruput", "runner", "'throughput'"),
        ("suites/flip_speedup.yaml", "  rounds: 9\n", "  rounds: 3\n",
         "scales.proxy.params.rounds", "greater than or equal to 9"),
        ("suites/flip_speedup.yaml", "{model: ViT-Proxy-256tok, batch_size: 8}", "{model: ViT-Proxy-256tok, batch_size: 8, batchsize: 8}",
         "scales.proxy.params.batchsize", "allowed: arms"),
        ("expected/flip_speedup.yaml", "kind: at_least", "kind: at-least", "entries.0.kind", "unknown kind 'at-least'; allowed: exact"),
        ("expected/flip_speedup.yaml", "  negative_control: patch_drop_0\n", "", "entries.4", "negative_control"),
        ("expected/flip_flops.yaml", "suite: flip_flops", "suite: [unclosed", "line", "not valid YAML"),
    ])
    def test_exit_2_names_file_and_field(self, root_copy, file, old, new, field, allowed):
        _edit(root_copy / file, old, new)
        before = sorted(p.name for p in (root_copy / "results").rglob("*"))
        proc = _cli(root_copy, "run", "flip_speedup" if "speedup" in file else "flip_flops",
                    "--scale", "proxy" if "speedup" in file else "paper", "--dry-run")
        assert proc.returncode == 2, proc.stderr
        assert file in proc.stderr and field in proc.stderr and allowed in proc.stderr
        assert "Traceback" not in proc.stderr
        assert sorted(p.name for p in (root_copy / "results").rglob("*")) == before  # nothing lost

    def test_validate_reports_every_broken_file(self, root_copy):
        _edit(root_copy / "suites/flip_flops.yaml", "ci_scale: paper", "ci_scale: papr")
        proc = _cli(root_copy, "validate")
        assert proc.returncode == 2 and "suites/flip_flops.yaml: ci_scale" in proc.stderr

    @pytest.mark.parametrize("args,needle", [
        (["run", "nope"], "SUITE: no such suite; known: clipa_b16, clipa_inverse_scaling, clipa_l16"),
        (["run", "flip_speedup", "--claim", "nope", "--scale", "proxy"], "--claim"),
        (["run", "flip_speedup", "--negative-control", "nope", "--scale", "proxy"], "negative_controls"),
    ])
    def test_unknown_names(self, root_copy, args, needle, capsys):
        assert main(["--root", str(root_copy), *args]) == 2
        assert needle in capsys.readouterr().err

    @pytest.mark.parametrize("args, env, needle", [
        (["run", "all", "--scale", "ci", "--claim", "flip_proxy_mask50_speedup"], {}, "--claim: names claims of one suite"),
        (["run", "flip_flops", "--scale", "paper", "--out", "{file}"], {}, "--out: is a file"),
        (["export", "{file}"], {}, "OUT: is a file"),
        (["run", "flip_flops", "--scale", "paper"], {"CLIPREPRO_TRAIN_JOBS": "two"}, "CLIPREPRO_TRAIN_JOBS: 'two': must be a whole number >= 1"),
        (["run", "flip_flops", "--scale", "paper"], {"CLIPREPRO_TRAIN_JOBS": "0"}, "CLIPREPRO_TRAIN_JOBS: '0'"),
        (["run", "clipa_l16", "--scale", "paper", "--train", "--launcher", "local", "--job", "1"], {},
         "--job: follows a submitted SLURM job: only with --launcher slurm"),
    ], ids=["claim-with-all", "out-file", "export-file", "train-jobs-word", "train-jobs-zero", "job-not-slurm"])
    def test_bad_arguments_are_refused_before_anything_runs(self, root_copy, tmp_path, monkeypatch, capsys,
                                                             args, env, needle):
        file = tmp_path / "a_file"
        file.write_text("x")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert main(["--root", str(root_copy), *[a.format(file=file) for a in args]]) == 2
        assert needle in capsys.readouterr().err

    def test_a_save_frequency_that_is_not_a_positive_whole_number(self, root_copy):
        _edit(root_copy / "suites/clipa_l16.yaml", "common_flags: [", 'common_flags: [--save-frequency, "0", ')
        proc = _cli(root_copy, "run", "clipa_l16", "--scale", "paper", "--dry-run")
        assert proc.returncode == 2 and "--save-frequency takes a whole number >= 1" in proc.stderr, proc.stderr
        assert "suites/clipa_l16.yaml" in proc.stderr and "Traceback" not in proc.stderr

    def test_not_a_root(self, tmp_path, capsys):
        assert main(["--root", str(tmp_path), "list"]) == 2
        assert "not a cliprepro root" in capsys.readouterr().err


class TestScales:
    def test_paper_dry_run_prints_the_plan(self, root_copy, capsys):
        assert main(["--root", str(root_copy), "run", "flip_speedup", "--scale", "paper", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "arm mask75: ViT-L-16-FLIP, random mask 0.75, batch 256" in out and "tokens at first block 50" in out

    @pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-CUDA path")
    def test_gpu_without_cuda_is_skipped_with_what_it_needs(self, root_copy, capsys):
        assert main(["--root", str(root_copy), "run", "flip_speedup", "--scale", "gpu"]) == 0
        out = capsys.readouterr().out
        assert "skipped" in out and "needs CUDA" in out
        [path] = (root_copy / "build" / "results").glob("flip_speedup__gpu__run__*.json")
        assert '"verdict": "skipped"' in path.read_text()
        assert not list((root_copy / "results").glob("flip_speedup__gpu__*"))  # not for committing

    def test_repo_validates(self, repo):
        proc = _cli(repo, "validate")
        assert proc.returncode == 0, proc.stderr

    def test_help_everywhere(self, repo):
        for cmd in ([], ["list"], ["validate"], ["run"], ["calibrate"], ["report"]):
            proc = _cli(repo, *cmd, "--help")
            assert proc.returncode == 0 and "usage: cliprepro" in proc.stdout


class TestPaperScaleTraining:
    def test_dry_run_prints_torchrun_plan(self, root_copy, capsys):
        assert main(["--root", str(root_copy), "run", "clipa_l16", "--scale", "paper", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "torchrun --nproc_per_node 8 -m runners.upstream.openclip_main --model ViT-L-16-CL16-GAP" in out
        assert "global batch 32,768 = 4096 per GPU, lr 0.001024" in out

    def test_released_weights_missing_is_skipped_saying_what_to_provide(self, root_copy, capsys, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        assert main(["--root", str(root_copy), "run", "clipa_l16", "--scale", "paper"]) == 0
        out = capsys.readouterr().out
        assert out.count("skipped") >= 2 and "weights.clipa_l16_i17_t16_pretrain" in out and "imagenet_val" in out

    def test_a_paper_run_that_measured_nothing_stays_in_build_with_no_user_paths(self, root_copy, monkeypatch):
        """Every claim skipped: the record is not for results/; it names config keys, not paths."""
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        (root_copy / "secret").mkdir()
        (root_copy / "secret" / "x.pt").write_bytes(b"not read: ImageNet is not configured")
        (root_copy / "cliprepro.yaml").write_text(f"weights:\n  clipa_l16_i17_t16_pretrain: {root_copy}/secret/x.pt\n")
        assert main(["--root", str(root_copy), "run", "clipa_l16", "--scale", "paper"]) == 0
        assert not list((root_copy / "results").glob("clipa_l16__paper__*"))
        [path] = (root_copy / "build" / "results").glob("clipa_l16__paper__run__*.json")
        text = path.read_text()
        assert str(root_copy) not in text and "weights.clipa_l16_i17_t16_pretrain" in text

    def test_auto_picks_paper_only_when_weights_and_imagenet_are_configured(self, root_copy, monkeypatch):
        from cliprepro.layout import Layout
        from cliprepro.runflow import pick_scale, released_weights_configured

        layout = Layout.find(str(root_copy))
        suite, _ = layout.load("clipa_l16")
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        assert not released_weights_configured(layout, suite)
        assert pick_scale(suite, "auto", cuda=False) == "proxy"
        for i in range(1000):  # ImageNet-1k val's synset folders (the layout is checked when the config loads)
            (root_copy / "in1k" / f"n{i:08d}").mkdir(parents=True)
        for key in ("clipa_l16_i17_t16_pretrain", "clipa_l16_i17_t16_finetune"):
            (root_copy / f"{key}.pt").touch()
        (root_copy / "cliprepro.yaml").write_text(
            f"imagenet_val: {root_copy / 'in1k'}\nweights:\n"
            + "".join(f"  {k}: {root_copy / k}.pt\n" for k in ("clipa_l16_i17_t16_pretrain", "clipa_l16_i17_t16_finetune")))
        assert released_weights_configured(layout, suite)
        assert pick_scale(suite, "auto", cuda=False, weights=True) == "paper"
        assert pick_scale(suite, "auto", cuda=True, weights=True) == "paper"  # weights before a GPU
        assert pick_scale(suite, "auto", cuda=True, weights=False) == "proxy"  # clipa_l16 has no gpu scale
        flip, _ = layout.load("flip_mask_ablation")  # its gpu scale trains on your own data
        assert pick_scale(flip, "auto", cuda=True) == "proxy"
        assert pick_scale(flip, "auto", cuda=True, own_data=True) == "gpu"
        shutil.rmtree(root_copy / "in1k" / "n00000999")  # 999 synset folders: bad input, naming the key
        with pytest.raises(InputError, match="cliprepro.yaml: imagenet_val: .* 999 class folder"):
            released_weights_configured(layout, suite)
        shutil.rmtree(root_copy / "in1k")  # a configured folder that is gone: bad input, naming the key
        with pytest.raises(InputError, match="cliprepro.yaml: imagenet_val: no such folder"):
            released_weights_configured(layout, suite)

    @pytest.mark.parametrize("where", ["before", "after"])
    def test_root_before_or_after_the_command(self, root_copy, tmp_path, monkeypatch, capsys, where):
        """`cliprepro validate --root X` works as users type it, from any directory."""
        monkeypatch.chdir(tmp_path)
        argv = ["--root", str(root_copy), "validate"] if where == "before" else ["validate", "--root", str(root_copy)]
        assert main(argv) == 0
        assert "suites and their expected files are valid" in capsys.readouterr().out

    def test_validate_prints_pass_probabilities(self, root_copy, capsys):
        assert main(["validate", "--root", str(root_copy)]) == 0
        out = capsys.readouterr().out
        assert "P(pass)" in out and "P(control fails)" in out and "P(a CI run passes every gate)" in out
        row = next(line for line in out.splitlines() if "clipa_l16_i37_t8_proxy_finetune_gain" in line)
        p_pass, p_fail = (float(x) for x in row.split()[2:4])
        assert 0 < p_pass < 1 and p_fail == 1.0 and "n=2 seeds" in row and "control deterministic" in row
        assert "Per suite at its CI scale" in out and "min P(control fails)" in out
        assert "deterministic count" in next(line for line in out.splitlines() if "bigg_params_text" in line)

    def test_bad_user_config_is_exit_2(self, root_copy, capsys, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        (root_copy / "cliprepro.yaml").write_text("imagenet: /x\n")
        assert main(["--root", str(root_copy), "run", "clipa_l16", "--scale", "paper"]) == 2
        assert "cliprepro.yaml: imagenet: unknown key; allowed: imagenet_val, own_data, retrieval, train_data, weights" in capsys.readouterr().err


class TestWithoutTheTagger:
    """A plain clone without NLTK's tagger: the syntax suites are skipped saying what to install,
    the run ends naming the skipped gates, exit status 1; nothing trains, nothing crashes."""

    def test_syntax_suite_is_skipped_with_the_command(self, root_copy, tmp_path, capsys, monkeypatch):
        empty = tmp_path / "no_nltk_data"
        empty.mkdir()
        monkeypatch.setenv("NLTK_DATA", str(empty))
        import nltk

        monkeypatch.setattr(nltk.data, "path", [str(empty)])  # no tagger anywhere NLTK looks
        assert main(["--root", str(root_copy), "run", "clipa_strategies", "--scale", "ci"]) == 1
        out = capsys.readouterr().out
        assert "1 gates skipped: clipa_strategies/clipa_syntax_keeps_content_words" in out
        assert "python -m nltk.downloader averaged_perceptron_tagger_eng" in out
        assert not (root_copy / "build" / "train").exists()  # nothing trained
