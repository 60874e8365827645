"""Training on the user's own data at a gpu scale: the config, the params, the source, and a
run on shards the test writes (slow; on CPU here, and the record says so)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from cliprepro.errors import InputError
from cliprepro.userconfig import load
from runners import declared_metrics
from runners.schema.train_params import TrainParams
from runners.training import sources
from runners.training.proxydata import DataSpec, ensure
from runners.training.stage import stage_argv, stage_key
from tests.conftest import REPO

SPEC = DataSpec(seed=3, image_px=32, train_samples=2048, eval_samples=100, shard_samples=1024)


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    """'Your' shards: image + caption tars without sizes.json, and two clip_benchmark wds sets."""
    built = ensure(SPEC, tmp_path_factory.mktemp("built"))
    mine = tmp_path_factory.mktemp("mine")
    shutil.copytree(built / "train", mine / "shards", ignore=shutil.ignore_patterns("sizes.json"))
    for name in ("color", "shape"):
        shutil.copytree(built / "eval" / f"wds_{name}", mine / f"wds_{name}")
    return mine


def _config(folder: Path, data: Path, **extra) -> Path:
    own = {"train": f"{data}/shards/shard-{{00000..00001}}.tar", "train_samples": 2048,
           "eval": {"color": str(data / "wds_color"), "shape": str(data / "wds_shape")}, **extra}
    path = folder / "cliprepro.yaml"
    path.write_text(json.dumps({"own_data": own}))
    return path


class TestUserConfig:
    def test_a_whole_config_loads(self, tmp_path, user_data, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        _config(tmp_path, user_data, targets={"t": 20.0})
        config, _ = load(tmp_path)
        assert config.own_data.train_samples == 2048 and config.own_data.targets == {"t": 20.0}

    @pytest.mark.parametrize("change, field", [
        ({"train": "/no/such/{0..1}.tar"}, "own_data.train"),
        ({"train": "/data/cc3m/{00000..00331.tar"}, "own_data.train"),  # unbalanced braces
        ({"eval": {"color": "/no/such/set"}}, "own_data.eval.color"),
        ({"eval": {"imagenet1k": "/no/such/folder"}}, "own_data.eval.imagenet1k"),
    ])
    def test_what_is_not_there_is_named(self, tmp_path, user_data, monkeypatch, change, field):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        _config(tmp_path, user_data, **change)
        with pytest.raises(InputError) as exc:
            load(tmp_path)
        assert exc.value.field == field

    def test_a_train_data_pattern_with_unbalanced_braces(self, tmp_path, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        (tmp_path / "cliprepro.yaml").write_text(json.dumps({"train_data": "/data/laion/{00000..41407.tar"}))
        with pytest.raises(InputError) as exc:
            load(tmp_path)
        assert exc.value.field == "train_data" and "not a shard pattern" in exc.value.problem

    @pytest.mark.parametrize("change", [{"train_samples": 0}, {"targets": {"t": 100.0}}, {"eval": {}},
                                        {"eval": {"Bad Name": "/x"}}, {"shards": "x"}])
    def test_bad_values_are_refused(self, tmp_path, user_data, monkeypatch, change):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        _config(tmp_path, user_data, **change)
        with pytest.raises(InputError):
            load(tmp_path)


def _params(**kw) -> TrainParams:
    stage = dict(name="s", model="ViT-TinyB-CL16", epochs=1, batch_size=64, lr=1e-3)
    return TrainParams(**{"data": "own_data", "seeds": [0], "stages": [stage], **kw})


class TestParams:
    @pytest.mark.parametrize("change, said", [
        ({"attributes": ["color"]}, "attributes belongs to the procedural data"),
        ({"retrieval": False}, "retrieval belongs to the procedural data"),
        ({"stages": [dict(name="s", model="ViT-TinyB-CL16", epochs=1, batch_size=64, lr=1e-3, train_shards=1)]},
         "train_shards needs the procedural data"),
    ])
    def test_procedural_data_fields_are_refused(self, change, said):
        with pytest.raises(ValidationError, match=said):
            _params(**change)

    def test_a_target_is_in_the_user_config_with_own_data_and_in_the_suite_without(self):
        two = dict(seeds=[0, 1], stages=[dict(name="a", model="ViT-TinyB-CL16", epochs=1, batch_size=64, lr=1e-3),
                                         dict(name="b", model="ViT-TinyB-CL16", epochs=1, batch_size=64, lr=2e-3)])
        tt = dict(name="t", arm=["b"], baseline=["a"])
        _params(**two, time_to_target=[tt])
        with pytest.raises(ValidationError, match="pre-registered in the user config"):
            _params(**two, time_to_target=[{**tt, "target_acc1_pct": 30.0, "target_source": "x"}])
        with pytest.raises(ValidationError, match="target_acc1_pct and target_source are required"):
            TrainParams(**two, time_to_target=[tt])

    def test_declared_accuracies_are_the_mean_only(self):
        names = declared_metrics(_params())
        assert "acc1_s_mean" in names and not any(n.startswith("acc1_s_") and n != "acc1_s_mean" for n in names)
        assert not any("retrieval" in n for n in names)


class TestSource:
    def test_identity_without_paths_and_arguments_from_the_config(self, tmp_path, user_data, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        config, path = load(_config(tmp_path, user_data, targets={"t": 20.0}).parent)
        source = sources.own(config.own_data, path)
        own = source.identity["own_data"]
        assert own["train"]["shards"] == 2 and own["train"]["train_samples"] == 2048
        assert set(own["eval_sets"]) == {"color", "shape"} and own["targets"] == {"t": 20.0}
        assert str(user_data) not in json.dumps(source.identity) and source.identity["substitutes_paper_data"]
        p = _params(precision="amp_bf16")
        flags = dict(zip(*[iter(stage_argv(p, p.stages[0], source, tmp_path / "logs", 0, None))] * 2))
        assert flags["--train-data"] == config.own_data.train
        assert flags["--train-num-samples"] == "2048" and flags["--precision"] == "amp_bf16"

    def test_other_bytes_under_the_same_names_are_another_cache_key(self, tmp_path, user_data, monkeypatch):
        monkeypatch.delenv("CLIPREPRO_CONFIG", raising=False)
        copy = tmp_path / "copy"
        shutil.copytree(user_data, copy)
        p = _params()
        config, path = load(_config(tmp_path, copy).parent)
        before = stage_key(p, p.stages[0], sources.own(config.own_data, path), 0)
        assert before == stage_key(p, p.stages[0], sources.own(load(_config(tmp_path, user_data).parent)[0].own_data, path), 0)
        with open(copy / "shards" / "shard-00001.tar", "ab") as f:
            f.write(b"\0" * 512)
        assert stage_key(p, p.stages[0], sources.own(config.own_data, path), 0) != before


SUITE = """
suite: tiny_own
version: 1
title: tiny own-data run (test fixture)
claim: masking half the patches reaches a target sooner (test fixture)
source: test fixture
command: cliprepro run tiny_own --scale gpu
fidelity: a test fixture, not a reproduction
runner: train
ci_scale: proxy
scales:
  proxy:
    hardware: CPU
    runtime_s: 300
    params:
      data: {seed: 1, image_px: 32, train_samples: 512, eval_samples: 20, shard_samples: 256}
      seeds: [0, 1]
      stages:
        - {name: full, model: ViT-TinyB-CL16, epochs: 2, batch_size: 64, lr: 2.0e-3, warmup: 2}
        - {name: half, model: ViT-TinyB-CL16, patch_dropout: 0.5, epochs: 2, batch_size: 64, lr: 2.0e-3, warmup: 2}
      time_to_target:
        - {name: half_vs_full, arm: [half], baseline: [full], target_acc1_pct: 20.0, target_source: test}
  gpu:
    hardware: one GPU (here a CPU; the record says which)
    runtime_s: 600
    params:
      data: own_data
      seeds: [0, 1]
      stages:
        - {name: full, model: ViT-TinyB-CL16, epochs: 2, batch_size: 64, lr: 2.0e-3, warmup: 4}
        - {name: half, model: ViT-TinyB-CL16, patch_dropout: 0.5, epochs: 2, batch_size: 64, lr: 2.0e-3, warmup: 4}
      compare:
        - {name: half_vs_full, a: full, b: half}
      time_to_target:
        - {name: half_vs_full, arm: [half], baseline: [full]}
"""
EXPECTED = """
suite: tiny_own
entries:
  - {claim: tiny_faster, scale: gpu, metric: speedup_to_target_half_vs_full, kind: direction, margin: 1.0,
     unit: x, role: finding, source: test, source_kind: primary}
  - {claim: tiny_gain, scale: gpu, metric: gain_half_vs_full, kind: direction, margin: 0.0,
     unit: pp, role: finding, source: test, source_kind: primary}
"""


def _root(tmp: Path) -> Path:
    for sub in ("suites", "expected"):
        (tmp / sub).mkdir(parents=True)
    (tmp / "suites" / "tiny_own.yaml").write_text(SUITE)
    (tmp / "expected" / "tiny_own.yaml").write_text(EXPECTED)
    return tmp


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CLIPREPRO_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "cliprepro", "--root", str(root), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_without_own_data_configured_the_scale_is_skipped_saying_what_to_set(tmp_path):
    proc = _cli(_root(tmp_path), "run", "tiny_own", "--scale", "gpu")
    [path] = tmp_path.glob("build/results/**/tiny_own*.json")
    record = json.loads(path.read_text())
    assert [r["verdict"] for r in record["results"]] == ["skipped", "skipped"], proc.stderr[-2000:]
    assert "own_data" in record["results"][0]["reason"]


@pytest.mark.slow
def test_a_gpu_scale_run_on_your_shards_records_their_identity_and_the_time_to_target(tmp_path, user_data):
    """Two seeds of two arms on the test-written shards (no sizes.json: the config's sample count is
    used), evaluated on two wds sets; the target pre-registered in the user config. On this CPU the
    record says cpu; its data are the user's, by identity, never by path."""
    root = _root(tmp_path)
    _config(root, user_data, targets={"half_vs_full": 18.0})
    proc = _cli(root, "run", "tiny_own", "--scale", "gpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [path] = root.glob("results/**/tiny_own__gpu__*.json")  # a gpu-scale run that measured: results/
    record = json.loads(path.read_text())
    assert record["status"] == "completed" and record["provenance"]["device"]["device_class"].startswith("cpu")
    inputs = record["inputs"]
    assert inputs["data"].startswith("own data ") and inputs["substitutes_paper_data"] is True
    own = inputs["own_data"]
    assert own["train"]["shards"] == 2 and own["train"]["train_samples"] == 2048 and "shard_sizes_sha256" in own["train"]
    assert set(own["eval_sets"]) == {"color", "shape"} and own["targets"] == {"half_vs_full": 18.0}
    assert str(user_data) not in path.read_text()
    assert inputs["chance_acc1_mean_pct"] == pytest.approx((100 / 8 + 100 / 5) / 2)  # 8 colours, 5 shapes
    metrics = record["metrics"]
    assert {"acc1_full_color", "acc1_full_shape", "acc1_full_mean"} <= set(metrics)
    curve = [p for p in record["points"] if p.get("time_to_target") == "half_vs_full" and "epoch" in p]
    assert {(p["side"], p["seed"]) for p in curve} == {(side, s) for side in ("arm", "baseline") for s in (0, 1)}
    result = next(r for r in record["results"] if r["claim"] == "tiny_faster")
    assert result["verdict"] != "error"
    said = result["value"] is not None or "> budget" in result["reason"]
    assert said, result  # a speed-up with its interval, or "> budget" naming the seeds
