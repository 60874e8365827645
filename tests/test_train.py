"""Train runner: stage arguments; a stage is a function of its arguments, and a run killed after its
first checkpoint resumes (both slow)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runners.schema.train_params import Stage, TrainParams
from runners.training.proxydata import DataSpec
from runners.training.sources import proxy_at
from runners.training.stage import stage_argv
from tests.conftest import REPO

TINY_SUITE = """
suite: tiny_train
version: 1
title: tiny two-stage run for the resume test
claim: fine-tuning at full tokens lifts accuracy (test fixture)
source: test fixture
command: cliprepro run tiny_train --scale proxy
fidelity: a test fixture, not a reproduction
runner: train
ci_scale: proxy
scales:
  proxy:
    hardware: CPU
    runtime_s: 300
    params:
      data: {seed: 1, image_px: 32, train_samples: 512, eval_samples: 20, shard_samples: 256}
      seeds: [0]
      retrieval: false
      attributes: [color]
      stages:
        - {name: pretrain, model: ViT-TinyB-CL16, image_size: 16, epochs: 3, batch_size: 64, lr: 1.0e-3}
        - {name: finetune, model: ViT-TinyB-CL16, epochs: 1, batch_size: 64, lr: 1.0e-3, init: previous}
      compare:
        - {name: gain, a: pretrain, b: finetune}
"""
TINY_EXPECTED = """
suite: tiny_train
entries:
  - {claim: tiny_gain, scale: proxy, metric: gain_gain, value: null, unit: pp, kind: calibrated_effect,
     null_value: 0.0, kept_fraction: 0.5, role: gate, negative_control: none_here, source: test, source_kind: calibration}
"""


class TestStageArgv:
    def test_flags(self, tmp_path):
        params = TrainParams(stages=[Stage(name="pre", model="ViT-TinyB-CL16", image_size=16, epochs=2,
                                           batch_size=64, lr=1e-3)], seeds=[0])
        (tmp_path / "train").mkdir()
        for i in range(3):
            (tmp_path / "train" / f"shard-{i:05d}.tar").touch()
        argv = stage_argv(params, params.stages[0], proxy_at(DataSpec(), tmp_path, []), tmp_path / "logs", 7, None)
        flags = dict(zip(argv[::2], argv[1::2]))
        assert flags["--train-data"].endswith("train/shard-{00000..00002}.tar")
        assert (flags["--force-image-size"], flags["--seed"], flags["--epochs"]) == ("16", "7", "2")
        assert flags["--beta2"] == "0.98" and flags["--eps"] == "1e-06"  # explicit, not name-dependent

    def test_a_data_subset_and_a_seed_offset(self, tmp_path):
        stage = Stage(name="sub", model="ViT-TinyB-CL16", epochs=2, batch_size=64, lr=1e-3, train_shards=1, seed_offset=5)
        params = TrainParams(stages=[stage], seeds=[0])
        (tmp_path / "train").mkdir()
        for i in range(3):
            (tmp_path / "train" / f"shard-{i:05d}.tar").touch()
        flags = dict(zip(*[iter(stage_argv(params, stage, proxy_at(DataSpec(), tmp_path, []), tmp_path / "logs", 7, None))] * 2))
        assert flags["--train-data"].endswith("train/shard-{00000..00000}.tar") and flags["--seed"] == "12"

    def test_later_fields_at_their_default_leave_dumps_as_they_were(self):
        """Records made before seed_offset / train_shards / soups existed still match today's params."""
        stage = Stage(name="a", model="ViT-TinyB-CL16", epochs=1, batch_size=8, lr=1e-3)
        assert not {"seed_offset", "train_shards"} & set(stage.model_dump(mode="json"))
        assert "soups" not in TrainParams(stages=[stage], seeds=[0]).model_dump(mode="json")
        assert stage.model_copy(update={"seed_offset": 1}).model_dump()["seed_offset"] == 1


PARENT = """
import subprocess, sys, time
from runners.training.stage import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_trainer_child_dies_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:  # gone, or a zombie where nothing reaps orphans
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its killed parent")


def _root(tmp: Path) -> Path:
    for sub in ("suites", "expected"):
        (tmp / sub).mkdir(parents=True)
    (tmp / "suites" / "tiny_train.yaml").write_text(TINY_SUITE)
    (tmp / "expected" / "tiny_train.yaml").write_text(TINY_EXPECTED)
    return tmp


def _run(root: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "cliprepro", "--root", str(root), "run", "tiny_train",
                             "--scale", "proxy"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, **kw)


def _final_steps(root: Path) -> int | None:
    from runners.training.paper import optimizer_steps

    [ckpt] = root.glob("build/train/*/stage/checkpoints/epoch_3.pt")
    return optimizer_steps(ckpt)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_step_count(tmp_path):
    killed, clean = _root(tmp_path / "killed"), _root(tmp_path / "clean")
    proc = _run(killed)
    deadline = time.time() + 240
    while not list(killed.glob("build/train/*/stage/checkpoints/epoch_1.pt")):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(killed.glob("build/results/*.json"))  # no record from a killed run
    assert _run(killed).wait() == 1  # completes; exit 1 only because the fixture gate is uncalibrated
    assert _run(clean).wait() == 1
    assert _final_steps(killed) == _final_steps(clean) == 3 * 512 // 64
    assert len(list(killed.glob("build/results/*.json"))) == 1
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".building-")]


@pytest.mark.slow
def test_a_stage_is_a_function_of_its_arguments(tmp_path):
    """Two fresh trainings with one seed give the same weights, with the random image and text masks
    on (RNG in the trainer and in the DataLoader workers); another seed gives other weights."""
    from runners.training.sources import proxy
    from runners.training.stage import run_stage

    data = proxy(DataSpec(seed=1, image_px=32, train_samples=512, eval_samples=20, shard_samples=128),
                 tmp_path / "data", [])
    stage = Stage(name="s", model="ViT-Tiny96-P8", epochs=2, batch_size=64, lr=1e-3, warmup=4,
                  patch_dropout=0.5, context_length=8, text_mask="random")
    params = TrainParams(stages=[stage], seeds=[0])

    def weights(folder: str, seed: int) -> dict[str, torch.Tensor]:
        ckpt, _trained = run_stage(params, stage, data, tmp_path / folder, seed, None)
        return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]

    a, b, other = weights("a", 0), weights("b", 0), weights("c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], other[k]) for k in a)


class TestEvalKey:
    """A cached evaluation is read back only for the same evaluation: each input of it changes the
    key (the checkpoint and model are in the stage's own folder, so training inputs need not)."""

    def _params(self, **over) -> TrainParams:
        import yaml

        return TrainParams(**{**yaml.safe_load(TINY_SUITE)["scales"]["proxy"]["params"], **over})

    def _source(self, key: str = "eval-data"):
        from runners.training.sources import Source

        return Source(label="l", train_key="t", eval_key=key, pattern="p", train_samples=1, shard_samples=None,
                      eval_sets={})

    @pytest.mark.parametrize("over, source_key, changes", [
        ({"eval_image_size": 16}, "eval-data", True),
        ({"attributes": ["shape"]}, "eval-data", True),
        ({"retrieval": True}, "eval-data", True),
        ({}, "other-eval-data", True),
        ({"seeds": [5]}, "eval-data", False),
    ], ids=["eval_image_size", "attributes", "retrieval", "eval-data", "seeds-not"])
    def test_each_input_changes_it(self, over, source_key, changes):
        from runners.train import eval_key

        base = eval_key(self._params(), self._source())
        assert (eval_key(self._params(**over), self._source(source_key)) != base) == changes
