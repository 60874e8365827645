"""Paper-scale plans: the generated torchrun lines against the published scripts."""
from __future__ import annotations

import shlex

import pytest

from cliprepro.layout import Layout
from runners.schema.paper import PaperRecipe
from runners.training.recipe import torchrun_lines
from tests.conftest import REPO

# Transcribed from open_clip docs/script_examples/clipa/: per-GPU batch on 8 GPUs,
# lr, warmup, epochs / samples, model, --force-image-size. Not derived from the suite files.
PUBLISHED = {
    ("clipa_b16", "pretrain"): {"--model": "ViT-B-16-CL16", "--force-image-size": "112", "--batch-size": "8192",
                                "--lr": "2.048e-3", "--warmup": "782", "--epochs": "6"},
    ("clipa_b16", "finetune"): {"--model": "ViT-B-16-CL16", "--batch-size": "1024", "--lr": "2.56e-5",
                                "--warmup": "3072", "--epochs": "1", "--train-num-samples": "131072000"},
    ("clipa_l16", "pretrain"): {"--model": "ViT-L-16-CL16-GAP", "--force-image-size": "64", "--batch-size": "4096",
                                "--lr": "1.024e-3", "--warmup": "1563", "--epochs": "6"},
    ("clipa_l16", "finetune"): {"--model": "ViT-L-16-CL16-GAP", "--batch-size": "896", "--lr": "2.24e-5",
                                "--warmup": "3571", "--epochs": "1", "--train-num-samples": "131072000"},
    ("clipa_l16_i37_t8", "pretrain"): {"--model": "ViT-L-16-CL8-Syntax-GAP", "--force-image-size": "96",
                                       "--batch-size": "4096", "--lr": "1.024e-3", "--warmup": "1563", "--epochs": "6"},
    ("clipa_l16_i37_t8", "finetune"): {"--model": "ViT-L-16-CL32-GAP", "--batch-size": "896", "--lr": "2.24e-5",
                                       "--warmup": "3571", "--epochs": "1", "--train-num-samples": "131072000"},
}
COMMON = {"--beta1": "0.9", "--beta2": "0.95", "--wd": "0.2", "--precision": "amp_bf16",
          "--dataset-type": "webdataset", "--seed": "0"}
SWITCHES = ("--ddp-static-graph", "--local-loss", "--gather-with-grad", "--grad-checkpointing")


def _recipe(suite: str) -> PaperRecipe:
    s, _ = Layout.find(str(REPO)).load(suite)
    return PaperRecipe.model_validate(s.scales["paper"].params)


def _flags(line: str) -> dict[str, str]:
    words = shlex.split(line)
    flags = {}
    for i, w in enumerate(words):
        if w.startswith("--") and i + 1 < len(words) and not words[i + 1].startswith("--"):
            flags[w] = words[i + 1]
        elif w.startswith("--"):
            flags[w] = ""
    return flags


def _same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


class TestTorchrunLines:
    @pytest.mark.parametrize("suite,stage", sorted(PUBLISHED))
    def test_matches_published_script(self, suite, stage):
        recipe = _recipe(suite)
        idx = [s.name for s in recipe.stages].index(stage)
        line = torchrun_lines(recipe)[idx]
        assert line.startswith("torchrun --nproc_per_node 8 -m runners.upstream.openclip_main ")
        flags = _flags(line)
        for key, value in {**PUBLISHED[(suite, stage)], **COMMON}.items():
            assert _same(flags.get(key, "<missing>"), value), (key, flags.get(key), value)
        assert all(s in flags for s in SWITCHES)
        if stage == "finetune":
            assert flags["--pretrained"].endswith("pretrain/checkpoints/epoch_6.pt")
            assert "--force-image-size" not in flags  # fine-tune at the model's full 224 px

    @pytest.mark.parametrize("gpus", [1, 4, 16])
    def test_gpu_count_keeps_global_batch_and_lr(self, gpus):
        recipe = _recipe("clipa_l16")
        eight = [_flags(x) for x in torchrun_lines(recipe)]
        other = [_flags(x) for x in torchrun_lines(recipe.model_copy(update={"gpus": gpus}))]
        for a, b in zip(eight, other):
            assert int(a["--batch-size"]) * 8 == int(b["--batch-size"]) * gpus
            assert a["--lr"] == b["--lr"]

    def test_indivisible_batch_is_bad_input(self):
        from cliprepro.errors import InputError
        with pytest.raises(InputError, match="not divisible"):
            torchrun_lines(_recipe("clipa_l16").model_copy(update={"gpus": 3}))


class TestFlipPlan:
    """flip_mask_ablation's paper plan against FLIP Table 1a / Appendix A: batches 16k / 32k / 64k, lr
    4e-6 x batch / 256, warm-up 51.2M samples; unmasked tuning from each masked arm at 4e-8."""
    EXPECT = {"clip": ("0", "256", "0.000256", "3125", None),
              "mask50": ("0.5", "512", "0.000512", "1563", None),
              "mask75": ("0.75", "1024", "0.001024", "782", None),
              "mask50_tuned": ("0", "512", "5.12e-06", "782", "logs/mask50/checkpoints/epoch_32.pt"),
              "mask75_tuned": ("0", "1024", "1.024e-05", "391", "logs/mask75/checkpoints/epoch_32.pt")}

    def test_lines(self):
        recipe = _recipe("flip_mask_ablation")
        for stage, line in zip(recipe.stages, torchrun_lines(recipe)):
            f = _flags(line)
            got = (f["--force-patch-dropout"], f["--batch-size"], f["--lr"], f["--warmup"], f.get("--pretrained"))
            assert all(_same(a, b) if a and b else a == b for a, b in zip(got, self.EXPECT[stage.name])), (stage.name, got)
            assert f["--nproc_per_node"] == "64" and f["--force-context-length"] == "32"

    def test_bad_init_is_rejected(self):
        data = _recipe("flip_mask_ablation").model_dump()
        data["stages"][1]["init"] = "nowhere"
        with pytest.raises(ValueError, match="earlier stage"):
            PaperRecipe.model_validate(data)
