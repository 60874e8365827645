"""The smallest CLIP training loop through DeepSpeed (ZeRO stage 1), as EVA-CLIP trains.

open_clip_train has no DeepSpeed path (open_clip #255 / #268 proposed one; not merged), so this
loop takes open_clip's model, its ClipLoss and open_clip_train's own data loader (`get_data`, with
the arguments open_clip_train's parser gives) and steps them with a DeepSpeed engine. Two upstream
traps (docs/traps.md): `deepspeed.initialize` cannot flatten open_clip's 0-dim `logit_scale`, so it
is made shape [1] (open_clip's load_checkpoint still loads it); and DeepSpeed clips gradients at
1.0 unless told, so `gradient_clipping` is always explicit.

`plain_steps` is the same loop with a plain torch optimizer: with gradient_clipping 0 and AdamW,
ZeRO-1 must give bit-identical weights (tests/test_zero.py). LAMB must not go through ZeRO's
flattened groups: one trust ratio per group instead of per layer.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


def one_dim_logit_scale(model: torch.nn.Module) -> torch.nn.Module:
    """logit_scale as shape [1]: DeepSpeed's flattening views every parameter as bytes, and a 0-dim
    tensor cannot be viewed."""
    if model.logit_scale.dim() == 0:
        model.logit_scale = torch.nn.Parameter(model.logit_scale.detach().reshape(1))
    return model


def zero_config(batch_size: int, stage: int = 1, gradient_clipping: float = 0.0) -> dict:
    """A one-process DeepSpeed config: fp32 on the CPU, ZeRO `stage`, clipping said explicitly."""
    return {"train_batch_size": batch_size, "train_micro_batch_size_per_gpu": batch_size,
            "gradient_accumulation_steps": 1, "gradient_clipping": gradient_clipping,
            "zero_optimization": {"stage": stage}, "fp16": {"enabled": False}, "bf16": {"enabled": False},
            "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}


def init_single_process() -> None:
    """DeepSpeed's process group on one CPU process (gloo), as torchrun would set it up."""
    import deepspeed

    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29517"), ("RANK", "0"),
                       ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, value)
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="gloo")


def _loss(model, images: torch.Tensor, texts: torch.Tensor, loss_fn) -> torch.Tensor:
    image_features, text_features, logit_scale = model(images, texts)[:3]
    return loss_fn(image_features, text_features, logit_scale)


def zero_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch],
               config: dict) -> Iterator[float]:
    """Train through a DeepSpeed engine; yields each step's loss."""
    import deepspeed
    from open_clip.loss import ClipLoss

    if model.logit_scale.dim() == 0:
        raise ValueError("call one_dim_logit_scale(model) before building its optimizer")
    init_single_process()
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    loss_fn = ClipLoss()
    for images, texts in batches:
        loss = _loss(engine, images, texts, loss_fn)
        engine.backward(loss)
        engine.step()
        yield float(loss.detach())


def plain_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch]) -> Iterator[float]:
    """The same steps with the optimizer alone (no DeepSpeed), for comparison."""
    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss()
    for images, texts in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(model, images, texts, loss_fn)
        loss.backward()
        optimizer.step()
        yield float(loss.detach())


def open_clip_batches(argv: list[str], model_name: str, steps: int) -> list[Batch]:
    """`steps` batches from open_clip_train's own webdataset loader, its arguments parsed by its
    own parser (e.g. ['--train-data', 'shards/{00000..00003}.tar', '--batch-size', '32', ...]), with
the fixes open_clip_train gets when this repo runs it (runners.upstream.compat)."""
    import open_clip
    from open_clip_train.data import get_data
    from open_clip_train.params import parse_args

    from runners.upstream import compat

    compat.apply_all()  # the trainer's own fixes to open_clip_train's loader (webdataset's end of shard)
    args = parse_args(["--model", model_name, "--dataset-type", "webdataset", *argv])
    args.distributed, args.world_size, args.rank = False, 1, 0
    _, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(model_name)
    data = get_data(args, (preprocess_train, preprocess_val), epoch=0, tokenizer=open_clip.get_tokenizer(model_name))
    out = []
    for images, texts in data["train"].dataloader:
        out.append((images, texts))
        if len(out) == steps:
            break
    return out
