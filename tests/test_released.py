"""Released weights: sources, the spec check, safe loading, the runner end to end on checkpoints
these tests make (saved as released ones are) and a tiny ImageNet-layout folder, and the miss
explained over the confounder grid."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from runners import released
from runners.model import weights
from runners.schema.released import ReleasedParams

MODEL = "ViT-Tiny48-P8"  # model_configs/: 32 px, GELU
N_CLASSES = 1000


def _net(seed: int = 0, quick_gelu: bool = False):
    import open_clip

    from runners.model.models import register_repo_configs

    register_repo_configs()
    torch.manual_seed(seed)
    return open_clip.create_model(MODEL, force_quick_gelu=quick_gelu)


def _config(quick_gelu: bool = False) -> dict:
    import open_clip

    cfg = dict(open_clip.get_model_config(MODEL))
    if quick_gelu:
        cfg["quick_gelu"] = True
    return {"model_cfg": cfg, "preprocess_cfg": {"mean": list(weights.DEFAULTS["mean"]),
                                                 "std": list(weights.DEFAULTS["std"])}}


def hub_folder(path, net=None, quick_gelu: bool = False):
    """open_clip's hub layout: open_clip_config.json beside open_clip_model.safetensors."""
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in (net or _net()).state_dict().items()}, str(path / weights.HUB_WEIGHTS[0]))
    (path / weights.HUB_CONFIG).write_text(json.dumps(_config(quick_gelu)))
    return path


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """All 1000 synset folders (ImageFolder numbers classes by the folders present), one 32 px image each."""
    root = tmp_path_factory.mktemp("imagenet") / "val"
    rng = np.random.default_rng(0)
    for i in range(N_CLASSES):
        folder = root / f"n{i:08d}"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "0.png")
    return root


def _params(**model) -> ReleasedParams:
    base = {"name": "tiny", "model": MODEL, "weights_key": "tiny",
            "protocol": {"templates": "one", "precision": "fp32", "batch_size": 250}}
    return ReleasedParams.model_validate({"models": [{**base, **model}]})


def _user(tmp_path, monkeypatch, **config):
    path = tmp_path / "user.yaml"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("CLIPREPRO_CONFIG", str(path))
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    return build


class TestResolve:
    def test_file_folder_and_missing(self, tmp_path):
        ckpt = tmp_path / "w.pt"
        ckpt.write_bytes(b"x")
        assert weights.resolve(str(ckpt), "k", MODEL, None) == weights.Resolved(ckpt, "weights.k (file)")
        folder = hub_folder(tmp_path / "hub")
        got = weights.resolve(f"local-dir:{folder}", "k", MODEL, None)
        assert got.checkpoint.name == weights.HUB_WEIGHTS[0] and got.config["model_cfg"]["embed_dim"] == 96
        (tmp_path / "empty").mkdir()
        with pytest.raises(weights.NotAvailable, match="open_clip_config.json"):
            weights.resolve(str(tmp_path / "empty"), "k", MODEL, None)
        with pytest.raises(weights.NotAvailable, match="set weights.k"):
            weights.resolve(None, "k", MODEL, None)

    @pytest.mark.parametrize("text", [b"{not json", b"\xff\xfe"])
    def test_a_folder_config_that_is_not_json_is_bad_input(self, tmp_path, text):
        from cliprepro.errors import InputError

        folder = hub_folder(tmp_path / "hub")
        (folder / weights.HUB_CONFIG).write_bytes(text)
        with pytest.raises(InputError) as info:
            weights.resolve(f"local-dir:{folder}", "k", MODEL, None)
        assert info.value.path == str(folder / weights.HUB_CONFIG) and "not readable JSON" in str(info.value)

    def test_hub_repo_only_from_the_cache(self, tmp_path, monkeypatch):
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
        with pytest.raises(weights.NotAvailable, match="huggingface-cli download laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"):
            weights.resolve(None, "bigg", "ViT-bigG-14", "laion2b_s39b_b160k")  # a tag: its repo, never fetched
        repo = tmp_path / "models--org--tiny"
        hub_folder(repo / "snapshots" / "abc")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("abc")
        got = weights.resolve("hf-hub:org/tiny", "k", MODEL, None)
        assert got.origin == "hf-hub:org/tiny (cache)" and got.config is not None


class TestSpec:
    @pytest.mark.parametrize("change, field", [
        ({"quick_gelu": True}, "activation (quick_gelu)"),
        ({"mean": (0.5, 0.5, 0.5)}, "mean"),
        ({"resize_mode": "squash"}, "resize_mode"),
        ({"interpolation": "bilinear"}, "interpolation"),
        ({"image_size": 64}, "image_size"),
    ])
    def test_a_mismatch_is_named(self, change, field):
        declared = weights.declared_spec(MODEL, None, False, None, "shortest", "bicubic")
        carried = weights.carried_spec(_config())
        assert weights.spec_mismatches(declared, carried) == []
        problems = weights.spec_mismatches({**declared, **change}, carried)
        assert len(problems) == 1 and problems[0].startswith(field)


class TestLoad:
    def test_a_pickle_that_carries_code_is_not_executed(self, tmp_path):
        marker = tmp_path / "ran"

        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        bad = tmp_path / "bad.pt"
        with open(bad, "wb") as f:
            pickle.dump({"state_dict": Payload()}, f)
        spec = weights.declared_spec(MODEL, None, False, None, "shortest", "bicubic")
        with pytest.raises(weights.Refused, match="not executed"):
            weights.load(weights.Resolved(bad, "weights.k (file)"), MODEL, spec, torch.device("cpu"))
        assert not marker.exists()

    def test_plain_state_dict_loads_and_another_architecture_is_refused(self, tmp_path):
        net = _net(3)
        torch.save(net.state_dict(), tmp_path / "w.pt")
        spec = weights.declared_spec(MODEL, None, False, None, "shortest", "bicubic")
        loaded, _, _ = weights.load(weights.Resolved(tmp_path / "w.pt", "f"), MODEL, spec, torch.device("cpu"))
        assert torch.equal(loaded.state_dict()["logit_scale"], net.state_dict()["logit_scale"])
        assert torch.equal(loaded.visual.conv1.weight, net.visual.conv1.weight)
        with pytest.raises(weights.Refused, match="not a ViT-Tiny96-P8 checkpoint"):
            weights.load(weights.Resolved(tmp_path / "w.pt", "f"), "ViT-Tiny96-P8",
                         weights.declared_spec("ViT-Tiny96-P8", None, False, None, "shortest", "bicubic"),
                         torch.device("cpu"))


class TestRun:
    def test_nothing_configured_is_skipped_naming_the_keys(self, tmp_path, monkeypatch):
        build = _user(tmp_path, monkeypatch)
        out = released.run(_params(retrieval=["mscoco_captions"]), "paper", build)
        assert not out.metrics and set(out.skip) == {"in1k_acc1_tiny", "mscoco_captions_image_retrieval_recall_at_5_tiny"}
        assert all("weights.tiny" in why for why in out.skip.values())

    def test_hub_layout_end_to_end(self, tmp_path, monkeypatch, imagenet):
        folder = hub_folder(tmp_path / "hub")
        build = _user(tmp_path, monkeypatch, imagenet_val=str(imagenet), weights={"tiny": f"local-dir:{folder}"})
        out = released.run(_params(retrieval=["flickr30k"]), "paper", build)
        m = out.metrics["in1k_acc1_tiny"]
        assert m.n == N_CLASSES and m.lo <= m.value <= m.hi and m.unit == "%"
        entry = out.inputs["tiny"]
        assert entry["sha256"] == weights.sha256(folder / weights.HUB_WEIGHTS[0]) and entry["spec_checked"]
        assert entry["protocol"]["templates"] == "one" and entry["protocol"]["n_templates"] == 1
        assert entry["protocol"]["layout"] == "folder" and len(entry["protocol"]["classnames_sha256"]) == 16
        assert "retrieval.flickr30k" in out.skip["flickr30k_image_retrieval_recall_at_5_tiny"]
        assert str(tmp_path) not in json.dumps(out.inputs)  # no user path in a record

    def test_a_mismatched_activation_is_refused(self, tmp_path, monkeypatch, imagenet):
        folder = hub_folder(tmp_path / "hub", quick_gelu=True)
        build = _user(tmp_path, monkeypatch, imagenet_val=str(imagenet), weights={"tiny": str(folder)})
        out = released.run(_params(), "paper", build)
        assert not out.metrics and "activation (quick_gelu)" in out.failed["in1k_acc1_tiny"]

    def test_a_bare_state_dict_is_used_as_declared_and_says_so(self, tmp_path, monkeypatch, imagenet):
        torch.save(_net().state_dict(), tmp_path / "w.pt")
        build = _user(tmp_path, monkeypatch, imagenet_val=str(imagenet), weights={"tiny": str(tmp_path / "w.pt")})
        out = released.run(_params(), "paper", build)
        assert "in1k_acc1_tiny" in out.metrics and out.inputs["tiny"]["spec_checked"] is False
        assert "not checked" in out.inputs["tiny"]["spec_note"]


def _wds(root, rows, **files):
    """A clip_benchmark wds set: test/0.tar + nshards.txt, and its metadata files."""
    import webdataset as wds

    (root / "test").mkdir(parents=True)
    with wds.TarWriter(str(root / "test" / "0.tar")) as sink:
        for row in rows:
            sink.write(row)
    (root / "test" / "nshards.txt").write_text("1\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


class TestWds:
    def test_imagenet_shards_and_a_retrieval_set(self, tmp_path, monkeypatch):
        import io

        def png(i):
            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), 7 * i % 256, dtype=np.uint8)).save(buf, format="PNG")
            return buf.getvalue()

        classes = [f"thing {i}" for i in range(N_CLASSES)]
        inet = _wds(tmp_path / "wds_imagenet1k", [{"__key__": f"{i:04d}", "png": png(i), "cls": i} for i in range(20)],
                    **{"classnames.txt": "\n".join(classes) + "\n",
                       "zeroshot_classification_templates.txt": "a photo of a {c}.\n"})
        flickr = _wds(tmp_path / "wds_flickr30k", [{"__key__": f"{i:04d}", "png": png(i), "txt": f"thing {i}"}
                                                    for i in range(20)], **{"dataset_type.txt": "retrieval\n"})
        torch.save(_net().state_dict(), tmp_path / "w.pt")
        build = _user(tmp_path, monkeypatch, imagenet_val=str(inet), retrieval={"flickr30k": str(flickr)},
                      weights={"tiny": str(tmp_path / "w.pt")})
        out = released.run(_params(retrieval=["flickr30k"]), "paper", build)
        assert out.metrics["in1k_acc1_tiny"].n == 20 and out.inputs["tiny"]["protocol"]["layout"] == "wds"
        from runners.zeroshot import text_digest

        assert out.inputs["tiny"]["protocol"]["classnames_sha256"] == text_digest(classes)  # the set's own names
        r5 = out.metrics["flickr30k_image_retrieval_recall_at_5_tiny"].value
        assert 0 <= r5 <= 100 and "flickr30k" in out.inputs["tiny"]["retrieval"]


class TestExplain:
    def test_grid_is_one_change_at_a_time(self):
        labels = [label for label, _ in released.grid(_params(), _params().models[0])]
        assert labels == ["activation QuickGELU", "resize_mode squash", "resize_mode longest",
                          "interpolation bilinear", "templates openai", "precision amp"]

    def test_a_wrong_template_set_is_named(self, tmp_path, monkeypatch, imagenet, root_copy):
        """The claim was made with OpenAI's templates; the suite pins one prompt: the run misses, and
        the grid beside the verdict names the templates. Images at the model's own size: resize and
        interpolation change nothing here."""
        from cliprepro.layout import Layout
        from cliprepro.runflow import execute
        from runners import zeroshot

        # OpenAI's first 4 prompts stand for its 80 (x 1000 classes, twice: ~50 s): any set other
        # than the suite's one prompt moves the scores, which is all the grid has to find
        full = zeroshot.imagenet_templates
        monkeypatch.setattr(zeroshot, "imagenet_templates", lambda which: full(which)[:4])
        torch.save(_net(7).state_dict(), tmp_path / "w.pt")
        _user(tmp_path, monkeypatch, imagenet_val=str(imagenet), weights={"tiny": str(tmp_path / "w.pt")})
        params = _params()
        source = weights.resolve(str(tmp_path / "w.pt"), "tiny", MODEL, None)
        published = round(100 * released.evaluate(params.models[0], source, imagenet, torch.device("cpu"),
                                                   templates="openai").metrics["acc1"], 4)
        model = params.models[0].model_dump(mode="json")
        (root_copy / "suites" / "tiny_released.yaml").write_text(json.dumps({
            "suite": "tiny_released", "version": 1, "title": "t", "claim": "c", "source": "s", "command": "c",
            "fidelity": "f", "runner": "released", "ci_scale": "paper",
            "scales": {"paper": {"hardware": "cpu", "runtime_s": 600, "params": {"models": [model]}}}}))
        (root_copy / "expected" / "tiny_released.yaml").write_text(json.dumps({"suite": "tiny_released", "entries": [{
            "claim": "tiny_in1k", "scale": "paper", "metric": "in1k_acc1_tiny", "unit": "%", "role": "finding",
            "source": "this test", "source_kind": "primary", "kind": "released_weights", "value": published,
            "published_rounding": 0.0, "pipeline_allowance": 0.0}]}))
        result = execute(Layout(root_copy), "tiny_released", scale="paper").record.results[0]
        assert result.verdict == "not_reproduced"  # the miss this test needs (fixed seed: deterministic on CPU)
        assert result.explanation.startswith("closes the gap: templates openai")
        assert "precision amp: not tried" in result.explanation
