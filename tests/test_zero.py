"""DeepSpeed ZeRO-1 run for real on one CPU process: with AdamW and clipping off it must step
bit-identically to plain torch AdamW, on batches from open_clip_train's own loader."""
from __future__ import annotations

import copy

import pytest
import torch

from runners.training import zero  # deepspeed is in the one venv (the bootstrap's zero extra): never skipped
from runners.training.proxydata import DataSpec, ensure

MODEL = "ViT-Tiny48-P8"
STEPS = 10
BATCH = 16


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    data = ensure(DataSpec(train_samples=256, eval_samples=10, shard_samples=64), tmp_path_factory.mktemp("data"))
    from runners.model.models import register_repo_configs

    register_repo_configs()
    return zero.open_clip_batches(["--train-data", f"{data}/train/shard-{{00000..00003}}.tar", "--batch-size",
                                   str(BATCH), "--workers", "0", "--train-num-samples", "256", "--seed", "0"],
                                  MODEL, STEPS)


def _pair():
    import open_clip

    torch.manual_seed(0)
    a = zero.one_dim_logit_scale(open_clip.create_model(MODEL))
    b = copy.deepcopy(a)

    def adamw(m):
        return torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    return a, adamw(a), b, adamw(b)


class TestZero1:
    def test_loader_gives_the_planned_batches(self, batches):
        assert len(batches) == STEPS and batches[0][0].shape == (BATCH, 3, 32, 32) and batches[0][1].shape[0] == BATCH

    def test_bit_identical_to_plain_adamw(self, batches):
        a, opt_a, b, opt_b = _pair()
        plain = list(zero.plain_steps(a, opt_a, batches))
        zero1 = list(zero.zero_steps(b, opt_b, batches, zero.zero_config(BATCH, stage=1, gradient_clipping=0.0)))
        assert plain == zero1 and len(plain) == STEPS
        for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
            assert torch.equal(p, q), name

    def test_deepspeeds_default_clipping_would_change_the_steps(self, batches):
        """The control: clipping at DeepSpeed's silent default 1.0 moves the weights elsewhere."""
        a, opt_a, b, opt_b = _pair()
        list(zero.plain_steps(a, opt_a, batches))
        list(zero.zero_steps(b, opt_b, batches, zero.zero_config(BATCH, stage=1, gradient_clipping=1.0)))
        assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

    def test_a_0_dim_logit_scale_is_refused_before_deepspeed_sees_it(self):
        import open_clip

        model = open_clip.create_model(MODEL)
        with pytest.raises(ValueError, match="one_dim_logit_scale"):
            next(zero.zero_steps(model, torch.optim.AdamW(model.parameters()), [], zero.zero_config(BATCH)))
