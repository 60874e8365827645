"""EVA-style MIM initialisation (runners.training.mim): the mask, the loss, the masked forward through
open_clip's own image tower, and a short run whose checkpoint starts a CLIP training."""
from __future__ import annotations

import json

import pytest
import torch

from runners.training import mim
from runners.training.proxydata import DataSpec, ensure

MODEL = "ViT-Tiny48-P8"


def _visual(seed: int = 0):
    model, _ = mim._clip(MODEL, seed)
    return model.visual.eval()


class TestRandomMask:
    @pytest.mark.parametrize("batch, patches, ratio, k", [(3, 16, 0.4, 6), (2, 16, 0.5, 8), (1, 49, 0.0, 0), (4, 4, 1.0, 4)])
    def test_exact_count_per_sample(self, batch, patches, ratio, k):
        mask = mim.random_mask(batch, patches, ratio, torch.Generator().manual_seed(0))
        assert mask.shape == (batch, patches) and mask.sum(dim=1).tolist() == [k] * batch

    def test_seeded(self):
        a = mim.random_mask(4, 16, 0.5, torch.Generator().manual_seed(3))
        assert torch.equal(a, mim.random_mask(4, 16, 0.5, torch.Generator().manual_seed(3)))
        assert not torch.equal(a, mim.random_mask(4, 16, 0.5, torch.Generator().manual_seed(4)))


class TestLoss:
    def test_only_masked_positions_count(self):
        t = torch.randn(2, 4, 8)
        mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
        s = t.clone()
        assert float(mim.mim_loss(s, t, mask)) == pytest.approx(0.0, abs=1e-6)
        s[~mask] = torch.randn_like(s[~mask])  # unmasked predictions do not matter
        assert float(mim.mim_loss(s, t, mask)) == pytest.approx(0.0, abs=1e-6)
        s[mask] = -t[mask]
        assert float(mim.mim_loss(s, t, mask)) == pytest.approx(2.0)


class TestMaskedForward:
    def test_masked_patches_no_longer_see_the_image(self):
        visual = _visual()
        a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
        patches = visual.grid_size[0] * visual.grid_size[1]
        token = torch.randn(visual.transformer.width)
        every = torch.ones(1, patches, dtype=torch.bool)
        with torch.no_grad():
            assert torch.allclose(mim.masked_tokens(visual, a, every, token), mim.masked_tokens(visual, b, every, token))
            none = torch.zeros(1, patches, dtype=torch.bool)
            assert torch.allclose(mim.masked_tokens(visual, a, none, token), mim.patch_tokens(visual, a))
            assert not torch.allclose(mim.patch_tokens(visual, a), mim.patch_tokens(visual, b))  # the hook is gone
        assert mim.patch_tokens(visual, a).shape == (1, patches, visual.transformer.width)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    data = ensure(DataSpec(seed=4, image_px=32, train_samples=256, eval_samples=10, shard_samples=128),
                  tmp_path_factory.mktemp("data"))
    return f"{data}/train/shard-{{00000..00001}}.tar"


def _run(shards: str, **kw) -> mim.MimRun:
    return mim.MimRun(**{"model": MODEL, "teacher_model": MODEL, "teacher": None, "shards": shards, "epochs": 2,
                         "samples_per_epoch": 256, "batch_size": 64, "lr": 2e-3, "mask_ratio": 0.4, "seed": 0, **kw})


class TestTrain:
    def test_the_image_tower_learns_and_the_text_tower_is_the_seeded_one(self, tmp_path, shards):
        from open_clip import load_checkpoint

        out = tmp_path / "mim.pt"
        summary = mim.train(_run(shards), out, tmp_path / "log")
        assert summary["steps"] == 8 and summary["last_loss"] < summary["first_loss"]
        assert json.loads((tmp_path / "mim.json").read_text())["teacher"] == "random"
        trained, _ = mim._clip(MODEL, 5)
        load_checkpoint(trained, str(out), weights_only=True)  # as open_clip_train's --pretrained loads it
        fresh, _ = mim._clip(MODEL, 0)
        assert all(torch.equal(a, b) for a, b in zip(trained.transformer.parameters(), fresh.transformer.parameters()))
        assert not torch.equal(trained.visual.conv1.weight, fresh.visual.conv1.weight)

    def test_epochs_0_copies_the_teacher(self, tmp_path, shards):
        from open_clip import load_checkpoint

        teacher, _ = mim._clip(MODEL, 9)
        torch.save({"epoch": 1, "state_dict": teacher.state_dict()}, tmp_path / "teacher.pt")
        mim.train(_run(shards, epochs=0, teacher=tmp_path / "teacher.pt"), tmp_path / "copy.pt", tmp_path / "log")
        copied, _ = mim._clip(MODEL, 5)
        load_checkpoint(copied, str(tmp_path / "copy.pt"), weights_only=True)
        assert all(torch.equal(a, b) for a, b in zip(copied.visual.parameters(), teacher.visual.parameters()))


def _params(**kw):
    from runners.schema.train_params import TrainParams

    t = dict(model=MODEL, batch_size=64, lr=1e-3)
    stages = kw.pop("stages", [{"name": "teacher", "epochs": 1, "data_seed": 9, **t},
                               {"name": "mim", "epochs": 1, "mim": {"teacher": "teacher"}, **t},
                               {"name": "copy", "epochs": 0, "mim": {"teacher": "teacher"}, **t},
                               {"name": "rand", "epochs": 0, "mim": {"teacher": "random"}, **t},
                               {"name": "row", "epochs": 1, "init": "mim", **t}])
    return TrainParams(**{"seeds": [0], "retrieval": False, "attributes": ["color"],
                          "data": {"seed": 4, "image_px": 32, "train_samples": 256, "eval_samples": 20,
                                   "shard_samples": 128}, "stages": stages, **kw})


class TestMimStages:
    @pytest.mark.parametrize("stage, said", [
        ({"name": "m", "epochs": 1, "mim": {"teacher": "random"}, "patch_dropout": 0.5}, "patch_dropout is a CLIP"),
        ({"name": "m", "epochs": 1, "mim": {"teacher": "nobody"}}, "mim.teacher must be 'random' or an earlier stage"),
        ({"name": "m", "epochs": 0, "mim": {"teacher": "t"}, "model": "ViT-Tiny96-P8"}, "needs the same model"),
        ({"name": "m", "epochs": 1, "data_seed": 4}, "data_seed draws procedural data other than the run's"),
    ])
    def test_refusals(self, stage, said):
        from pydantic import ValidationError

        base = dict(model=MODEL, batch_size=64, lr=1e-3)
        with pytest.raises(ValidationError, match=said):
            _params(stages=[{"name": "t", "epochs": 1, **base}, {**base, **stage}])

    def test_a_mim_stage_is_keyed_by_its_teacher_and_the_teacher_by_its_data(self):
        from runners.training.sources import proxy_at, stage_train_key
        from runners.training.stage import stage_key

        p = _params()
        source = proxy_at(DataSpec(**p.data.model_dump()), __import__("pathlib").Path("/nonexistent"), [])
        assert stage_train_key(source, p, p.stages[0]) != source.train_key  # data_seed: other samples
        assert stage_train_key(source, p, p.stages[1]) == source.train_key  # MIM reads the run's images
        other = _params(stages=[{**s.model_dump(exclude_none=True), **({"lr": 2e-3} if s.name == "teacher" else {})}
                                for s in p.stages])
        for name in ("mim", "copy", "row"):
            s, o = next(x for x in p.stages if x.name == name), next(x for x in other.stages if x.name == name)
            assert stage_key(p, s, source, 0) != stage_key(other, o, source, 0), name
        rand = next(x for x in p.stages if x.name == "rand")
        assert stage_key(p, rand, source, 0) == stage_key(other, next(x for x in other.stages if x.name == "rand"), source, 0)

    def test_compute_is_charged_to_the_students(self):
        from runners.train import train_gflop_per_sample

        p = _params()
        clip, mim_stage = p.stages[0], p.stages[1]
        assert 0 < train_gflop_per_sample(mim_stage, MODEL) < train_gflop_per_sample(clip)


@pytest.mark.slow
def test_a_run_with_a_teacher_a_mim_stage_and_its_controls(tmp_path):
    """The teacher trains on another data seed; MIM, copied teacher and random init start CLIP
    stages; the copy holds the teacher's image tower; compute adds up from scratch."""
    from runners import train
    from runners.training.sources import proxy
    from runners.training.schedule import train_all

    p = _params()
    source = proxy(DataSpec(**p.data.model_dump()), tmp_path / "data", ["color"])
    out = train.run(p, "proxy", tmp_path)
    assert not out.errors, out.errors
    trained = train_all(p, source, tmp_path / "train", 0.0, train.evaluate_to, train.eval_key(p, source))
    teacher = torch.load(trained[("teacher", 0)].checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    copy = torch.load(trained[("copy", 0)].checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(v, copy[k]) for k, v in teacher.items() if k.startswith("visual."))
    disjoint = DataSpec(**{**p.data.model_dump(), "seed": 9}).fingerprint()
    assert f"proxy-{disjoint}" in (trained[("teacher", 0)].logs / "stage" / "params.txt").read_text()
    assert f"proxy-{disjoint}" not in (trained[("row", 0)].logs / "stage" / "params.txt").read_text()
    gflop = {pt["stage"]: pt["train_gflop"] for pt in out.points if "train_gflop" in pt}
    assert gflop["row"] > gflop["mim"] > gflop["teacher"] > 0 and gflop["copy"] == gflop["teacher"]
    assert json.loads((trained[("mim", 0)].logs / "mim.json").read_text())["teacher"] == "trained"
