"""Zero-shot through clip_benchmark: our numbers are clip_benchmark's own; weights load safely."""
from __future__ import annotations

import pytest
import torch

from cliprepro import predictions
from runners import zeroshot
from runners.model.models import build, model_config
from runners.training.proxydata import DataSpec, ensure

SPEC = DataSpec(seed=5, image_px=32, train_samples=64, eval_samples=60, shard_samples=64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised tiny CLIP saved as a checkpoint the test makes, and a tiny eval set."""
    root = tmp_path_factory.mktemp("zs")
    torch.manual_seed(0)
    model = build(model_config("ViT-TinyB-CL16"))
    ckpt = root / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, ckpt)  # open_clip_train's layout
    return ensure(SPEC, root / "data"), ckpt


class TestClassify:
    @pytest.mark.parametrize("attribute", ["color", "size"])
    def test_acc1_equals_clip_benchmarks_own(self, tiny, attribute):
        from clip_benchmark.datasets.builder import build_dataset
        from clip_benchmark.metrics import zeroshot_classification as zsc

        data, ckpt = tiny
        model, transform, tokenizer = zeroshot.load_model("ViT-TinyB-CL16", ckpt, None, torch.device("cpu"))
        ours = zeroshot.classify(model, tokenizer, transform, data / "eval" / f"wds_{attribute}", attribute,
                                 torch.device("cpu"))
        ds = build_dataset(f"wds/{attribute}", root=str(data / "eval" / f"wds_{attribute}"),
                           transform=transform, split="test", download=False, task="zeroshot_classification")
        loader = torch.utils.data.DataLoader(ds.batched(16), batch_size=None, num_workers=0)
        theirs = zsc.evaluate(model, loader, tokenizer, ds.classes, ds.templates, "cpu", amp=False)
        assert ours.metrics["acc1"] == theirs["acc1"]
        assert ours.metrics["mean_per_class_recall"] == pytest.approx(theirs["mean_per_class_recall"])
        assert ("acc5" in ours.metrics) == (len(ds.classes) >= 5)
        assert ours.correct.mean() == pytest.approx(ours.metrics["acc1"])
        assert predictions.unpack(predictions.pack(ours.correct)).tolist() == ours.correct.tolist()

    def test_retrieval_reports_recall_at_k(self, tiny):
        data, ckpt = tiny
        model, transform, tokenizer = zeroshot.load_model("ViT-TinyB-CL16", ckpt, None, torch.device("cpu"))
        r = zeroshot.retrieve(model, tokenizer, transform, data / "eval" / "wds_retrieval", "retrieval",
                              torch.device("cpu"))
        assert {"image_retrieval_recall@1", "text_retrieval_recall@5"} <= set(r.metrics)
        assert all(0 <= v <= 1 for v in r.metrics.values())


class TestSafety:
    def test_pickled_code_in_a_checkpoint_is_refused(self, tmp_path):
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        ckpt = tmp_path / "evil.pt"
        torch.save({"state_dict": {}, "payload": Evil()}, ckpt)
        with pytest.raises(Exception, match="[Ww]eights only"):
            zeroshot.load_model("ViT-TinyB-CL16", ckpt, None, torch.device("cpu"))

    def test_imagenet_is_never_built_without_a_folder(self, tmp_path):
        assert zeroshot.imagenet_root(None) is None
        assert zeroshot.imagenet_root(str(tmp_path / "missing")) is None
        assert zeroshot.imagenet_root(str(tmp_path)) == tmp_path
