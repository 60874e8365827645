"""Launching a published recipe for real: preflight (pure), following a SLURM job (sacct parsing,
state changes), the CLI's refusals, and (slow) a 2-process training through a fake SLURM that is
killed, requeued and resumes to the same optimizer step count (tests/fakeslurm.py); a local launch
on one CPU "GPU" whose checkpoints are evaluated on a configured ImageNet (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cliprepro.cli import main
from runners.training import preflight, slurm
from runners.training.paper import optimizer_steps
from runners.training.preflight import Facts
from tests.conftest import REPO

GIB = 2**30


class TestParseSacct:
    @pytest.mark.parametrize("text, want", [
        ("COMPLETED|0:0\n", ("COMPLETED", "0:0")),
        ("CANCELLED by 1234|0:15\n", ("CANCELLED", "0:15")),
        ("\nFAILED|1:0\n", ("FAILED", "1:0")),
        ("", None),
    ])
    def test_table(self, text, want):
        assert slurm.parse_sacct(text) == want


class TestFollow:
    def test_a_requeued_job_is_followed_to_its_end(self, monkeypatch):
        states = iter([("PENDING", ""), ("RUNNING", ""), ("RUNNING", ""), ("PENDING", ""), ("RUNNING", ""),
                       ("COMPLETED", "0:0")])
        monkeypatch.setattr(slurm, "state", lambda job: next(states))
        seen, ticks = [], []
        assert slurm.follow("7", seen.append, poll_s=0, tick=lambda: ticks.append(1)) == ("COMPLETED", "0:0")
        assert seen == ["PENDING", "RUNNING", "PENDING", "RUNNING", "COMPLETED"] and len(ticks) == 6

    @pytest.mark.parametrize("final", ["FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY"])
    def test_a_failed_job_ends_the_follow(self, monkeypatch, final):
        monkeypatch.setattr(slurm, "state", lambda job: (final, "1:0"))
        assert slurm.follow("7", lambda s: None, poll_s=0) == (final, "1:0")


class TestPreflight:
    def _shards(self, tmp_path, n=2):
        for i in range(n):
            (tmp_path / f"s-{i}.tar").write_bytes(b"x")
        return f"{tmp_path}/s-{{0..{n - 1}}}.tar"

    def test_everything_there(self, tmp_path):
        facts = Facts(8, (80.0,) * 8, 100 * GIB)
        assert preflight.problems(self._shards(tmp_path), 8, 80.0, [("a", 2, GIB)], tmp_path, facts) == []

    @pytest.mark.parametrize("need, memory, facts, said", [
        (8, None, Facts(4, (80.0,) * 4, 100 * GIB), "needs 8 per node, 4 visible"),
        (2, 80.0, Facts(2, (40.0, 40.0), 100 * GIB), "declared for 80 GiB GPUs; 2 visible have 40.0 GiB"),
        (None, None, Facts(0, (), 100 * GIB), ""),  # SLURM: checked in the job
        (1, None, Facts(1, (80.0,), GIB), "disk: the checkpoints need 3.0 GiB"),
    ])
    def test_refusals(self, tmp_path, need, memory, facts, said):
        found = preflight.problems(self._shards(tmp_path), need, memory, [("a", 3, GIB)], tmp_path, facts)
        assert (said in "; ".join(found)) if said else found == []

    def test_a_missing_shard_is_named(self, tmp_path):
        pattern = self._shards(tmp_path, 3)
        (tmp_path / "s-1.tar").unlink()
        [said] = preflight.shard_problems(pattern)
        assert "1 of 3 shard(s)" in said and "s-1.tar" in said
        assert preflight.shard_problems("pipe:curl -s http://x/{0..3}.tar") == []  # remote: not checked here

    def test_a_checkpoint_is_12_bytes_per_parameter(self):
        assert preflight.checkpoint_bytes("ViT-Tiny48-P8") % 12 == 0 and preflight.checkpoint_bytes("ViT-L-16-CL16-GAP") > 4 * GIB


TINY_PAPER = """
suite: tiny_paper
version: 1
title: a two-stage "published" recipe small enough for a CPU (test fixture)
claim: launching, requeueing and collecting work (test fixture)
source: test fixture
command: cliprepro run tiny_paper --scale paper --train --launcher slurm
fidelity: a test fixture, not a reproduction
runner: train
ci_scale: paper
scales:
  paper:
    hardware: 2 CPU processes (gloo) under a fake SLURM
    runtime_s: 600
    params:
      gpus: 2
      common_flags: [--dataset-type, webdataset, --workers, "1", --precision, fp32, --seed, "0",
                     --save-frequency, "1", --report-to, ""]
      stages:
        - {name: pretrain, script: none, model: ViT-Tiny48-P8, global_batch: 64, lr_per_256: 4.0e-3,
           warmup: 2, epochs: 3, weights_key: tiny_pretrain}
        - {name: finetune, script: none, model: ViT-Tiny48-P8, global_batch: 64, lr_per_256: 1.0e-3,
           warmup: 0, epochs: 1, weights_key: tiny_finetune}
"""
TINY_PAPER_EXPECTED = """
suite: tiny_paper
entries:
  - {claim: tiny_pre, scale: paper, metric: in1k_acc1_pretrain, unit: '%', role: finding, source: test,
     source_kind: primary, value: 1.0, kind: released_weights, published_rounding: 0.05}
"""


def _layout(tmp_path: Path, train_data: str | None) -> Path:
    root = tmp_path / "root"
    for sub in ("suites", "expected"):
        (root / sub).mkdir(parents=True)
    (root / "suites" / "tiny_paper.yaml").write_text(TINY_PAPER)
    (root / "expected" / "tiny_paper.yaml").write_text(TINY_PAPER_EXPECTED)
    if train_data:
        (root / "cliprepro.yaml").write_text(f"train_data: {train_data}\n")
    (root / "cluster.yaml").write_text(
        f"nodes: 1\ngpus_per_node: 2\ngpu: cpu\ncpus_per_task: 1\n"
        f"activate: export PATH={Path(sys.executable).parent}:$PATH PYTHONPATH={REPO} OMP_NUM_THREADS=1\n")
    return root


def _argv(root: Path, launcher: str = "slurm") -> list[str]:
    return ["--root", str(root), "run", "tiny_paper", "--scale", "paper", "--train", "--launcher", launcher,
            "--cluster", str(root / "cluster.yaml")]


class TestLaunchRefusals:
    def test_no_training_data_configured(self, tmp_path, capsys, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        assert main(_argv(_layout(tmp_path, None))) == 2
        assert "train_data" in capsys.readouterr().err

    def test_missing_shards_stop_before_anything_is_submitted(self, tmp_path, capsys, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        root = _layout(tmp_path, str(tmp_path / "nowhere-{0..3}.tar"))
        assert main(_argv(root)) == 2
        err = capsys.readouterr().err
        assert "preflight" in err and "4 of 4 shard(s) missing" in err
        assert not (root / "build" / "launch").exists()

    def test_local_is_one_gpu(self, tmp_path, capsys, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        assert main(_argv(_layout(tmp_path, "x.tar"), "local")) == 2
        assert "gpus_per_node" in capsys.readouterr().err


@pytest.mark.slow
def test_a_slurm_job_killed_and_requeued_resumes_to_the_same_step_count(tmp_path):
    """2 CPU processes per stage (srun tasks, gloo) through open_clip_train's SLURM path. Stage
    pretrain is killed after its first epoch's checkpoint and the job requeued; every stage resumes
    with --resume latest. 512 samples / global batch 64 = 8 steps an epoch: 24 + 8 optimizer steps,
    as without the kill. The record holds the job, its end and each stage's step count."""
    from runners.training.proxydata import DataSpec, ensure
    from tests import fakeslurm

    data = ensure(DataSpec(train_samples=512, eval_samples=10, shard_samples=128), tmp_path / "data")
    root = _layout(tmp_path, f"{data}/train/shard-{{00000..00003}}.tar")
    env = {**os.environ, **fakeslurm.install(tmp_path / "bin", tmp_path / "slurm"), "PYTHONPATH": str(REPO),
           "CLIPREPRO_SLURM_POLL_S": "0.5"}
    env.pop("CLIPREPRO_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "cliprepro", *_argv(root)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first = root / "logs" / "pretrain" / "checkpoints" / "epoch_1.pt"
    deadline = time.time() + 300
    while not first.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"no first checkpoint: {proc.communicate()[0][-3000:]}")
        time.sleep(0.2)
    [job_file] = (root / "build" / "launch" / "tiny_paper").glob("job-*.json")
    job = json.loads(job_file.read_text())["job"]
    subprocess.run(["scontrol", "requeue", job], env=env, check=True)
    out, _ = proc.communicate(timeout=600)
    assert "submitted SLURM job" in out and "COMPLETED" in out, out[-3000:]
    assert json.loads((tmp_path / "slurm" / f"job-{job}.json").read_text())["restarts"] == 1
    assert "Found checkpoint" in (root / "logs" / "pretrain" / "out.log").read_text() or \
        "resum" in (root / "logs" / "pretrain" / "out.log").read_text().lower()
    assert optimizer_steps(root / "logs" / "pretrain" / "checkpoints" / "epoch_3.pt") == 24
    [path] = (root / "build" / "results").glob("tiny_paper*.json")
    record = json.loads(path.read_text())
    launch = record["inputs"]["launch"]
    assert (launch["job"], launch["state"], launch["steps"]) == (job, "COMPLETED", {"pretrain": 24, "finetune": 8})
    assert launch["train_data"]["shards"] == 4 and "path" not in json.dumps(launch)


@pytest.mark.slow
def test_a_local_launch_trains_in_order_then_evaluates_its_checkpoints_on_imagenet(tmp_path):
    """`--launcher local` with one "GPU" that is this CPU (cluster gpu: cpu): each stage one process,
    in order, then the trained checkpoints zero-shot on the configured ImageNet, here a clip_benchmark
    wds set the test writes (the procedural colour set). The record holds each stage's accuracy on
    it, where the checkpoints came from (trained here), the eval set's fingerprint and the steps."""
    from runners.training.proxydata import DataSpec, ensure

    data = ensure(DataSpec(train_samples=512, eval_samples=40, shard_samples=128), tmp_path / "data")
    root = _layout(tmp_path, f"{data}/train/shard-{{00000..00003}}.tar")
    with open(root / "cliprepro.yaml", "a") as f:
        f.write(f"imagenet_val: {data / 'eval' / 'wds_color'}\n")
    (root / "cluster.yaml").write_text("nodes: 1\ngpus_per_node: 1\ngpu: cpu\ncpus_per_task: 1\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # `python` in the printed lines
    env.pop("CLIPREPRO_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "cliprepro", *_argv(root, "local")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.count("running: python -m runners.upstream.openclip_main") == 2
    [path] = (root / "results").glob("tiny_paper__paper__*.json")  # measured at paper scale: results/
    record = json.loads(path.read_text())
    inputs = record["inputs"]
    assert (inputs["launch"]["launcher"], inputs["launch"]["state"]) == ("local", "COMPLETED")
    assert inputs["launch"]["steps"] == {"pretrain": 24, "finetune": 8}
    assert inputs["pretrain_checkpoint"]["config_key"] == "trained here (launch)"
    assert inputs["imagenet_val"]["fingerprint"] and str(data) not in path.read_text()
    for stage in ("pretrain", "finetune"):
        correct = record["metrics"][f"in1k_acc1_{stage}"]["value"] * 40 / 100  # of the set's 40 examples
        assert correct == pytest.approx(round(correct)) and 0 <= correct <= 40
