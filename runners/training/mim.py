"""EVA's MIM initialisation at proxy scale: an image tower learns to regress a frozen CLIP teacher's
features at masked patches, then starts a CLIP training as its image tower.

EVA-02's recipe in small: a fraction of the patch embeddings is replaced by a learned [MASK]
embedding; the student's final patch tokens, through a linear head, predict the teacher's final
patch tokens of the unmasked image; the loss is one minus their cosine similarity at the masked
positions. open_clip's VisionTransformer is used as it is, for student and teacher: a hook on its
patch embedding (`conv1`) masks, and `output_tokens` gives the patch tokens. Nothing in open_clip,
timm or open_clip_train does this, so this module is written here (~the size of EVA's loss).

The result is an open_clip_train checkpoint (`{"epoch", "state_dict"}`) of the whole CLIP model: the
text tower as the seeded model initialises it, the image tower as MIM left it; `--pretrained` starts
a stage from it. Controls: a random (untrained) teacher, and the teacher's image tower copied
(epochs 0: no MIM, the student is the teacher).
"""
from __future__ import annotations

import io
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


CHECKPOINT = "mim.pt"  # a MIM stage's whole-CLIP checkpoint, in its cache folder


@dataclass(frozen=True)
class MimRun:
    model: str                # open_clip config of the CLIP model whose image tower is trained
    teacher_model: str        # the teacher's config (a CLIP model; its image tower is used)
    teacher: Path | None      # the teacher's checkpoint; None: an untrained teacher (a control)
    shards: str               # webdataset images to train on (the CLIP training's own)
    epochs: int               # 0: no MIM: the student is the teacher's image tower, copied
    samples_per_epoch: int
    batch_size: int
    lr: float
    mask_ratio: float
    seed: int


def masked_tokens(visual, images: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
    """The image tower's final patch tokens with the patch embeddings at `mask` ([B, patches] bool)
    replaced by `mask_token` ([width])."""
    def swap(_module, _args, out):  # out: [B, width, gh, gw]
        b, c, h, w = out.shape
        flat = out.flatten(2).transpose(1, 2)  # [B, patches, width]
        flat = torch.where(mask[..., None], mask_token.to(flat.dtype).expand_as(flat), flat)
        return flat.transpose(1, 2).reshape(b, c, h, w)

    handle = visual.conv1.register_forward_hook(swap)
    try:
        return patch_tokens(visual, images)
    finally:
        handle.remove()


def patch_tokens(visual, images: torch.Tensor) -> torch.Tensor:
    """[B, patches, width]: the tower's final tokens without the class token (open_clip's own)."""
    keep = visual.output_tokens
    visual.output_tokens = True
    try:
        _pooled, tokens = visual(images)
    finally:
        visual.output_tokens = keep
    return tokens


def random_mask(batch: int, patches: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Exactly round(ratio x patches) masked positions per sample, chosen uniformly."""
    k = round(ratio * patches)
    order = torch.rand(batch, patches, generator=gen).argsort(dim=1)
    mask = torch.zeros(batch, patches, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def mim_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of predicted and teacher tokens, over the masked positions."""
    return 1 - F.cosine_similarity(student[mask], teacher[mask], dim=-1).mean()


def _clip(name: str, seed: int):
    import open_clip

    from runners.model.models import register_repo_configs

    register_repo_configs()
    torch.manual_seed(seed)
    model, preprocess, _ = open_clip.create_model_and_transforms(name)
    return model, preprocess


def _teacher(run: MimRun):
    teacher, _ = _clip(run.teacher_model, run.seed + 1)  # untrained unless a checkpoint is loaded
    if run.teacher is not None:
        from open_clip import load_checkpoint

        load_checkpoint(teacher, str(run.teacher), weights_only=True)
    return teacher.visual.eval().requires_grad_(False)


def _images(run: MimRun, preprocess, epoch: int):
    import webdataset as wds

    rng = random.Random(run.seed * 1000 + epoch)
    data = (wds.WebDataset(run.shards, shardshuffle=False, empty_check=False).shuffle(1000, rng=rng)
            .decode("pil").to_tuple("png;jpg;jpeg;webp").map_tuple(preprocess).batched(run.batch_size, partial=False))
    seen = 0
    for (images,) in data:
        if seen >= run.samples_per_epoch:
            return
        seen += images.shape[0]
        yield images


def train(run: MimRun, out: Path, log: Path) -> dict:
    """MIM-train the image tower of `run.model` and write the whole CLIP checkpoint to `out`
    (atomically); a summary of what was done (JSON beside it, and returned)."""
    from cliprepro.record import atomic_write_bytes, atomic_write_text

    model, preprocess = _clip(run.model, run.seed)
    teacher = _teacher(run)
    student = model.visual
    started, losses, steps = time.time(), [], 0
    if run.epochs == 0:  # the control: the teacher's image tower as the init, no MIM
        student.load_state_dict(teacher.state_dict())
    else:
        width_t = patch_tokens(teacher, torch.zeros(1, 3, *student.image_size)).shape[-1]
        head = torch.nn.Linear(student.transformer.width, width_t)
        mask_token = torch.nn.Parameter(torch.zeros(student.transformer.width))
        params = [*student.parameters(), *head.parameters(), mask_token]
        opt = torch.optim.AdamW(params, lr=run.lr, weight_decay=0.05)
        gen = torch.Generator().manual_seed(run.seed)
        student.train()
        for epoch in range(run.epochs):
            for images in _images(run, preprocess, epoch):
                patches = student.grid_size[0] * student.grid_size[1]
                mask = random_mask(images.shape[0], patches, run.mask_ratio, gen)
                with torch.no_grad():
                    target = patch_tokens(teacher, images)
                loss = mim_loss(head(masked_tokens(student, images, mask, mask_token)), target, mask)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                steps += 1
            with open(log, "a") as f:
                f.write(f"mim epoch {epoch + 1}/{run.epochs}: {steps} steps, loss {losses[-1]:.4f}\n")
    buf = io.BytesIO()
    torch.save({"epoch": run.epochs, "name": "mim", "state_dict": model.state_dict()}, buf)
    atomic_write_bytes(out, buf.getvalue())
    summary = {"steps": steps, "seconds": round(time.time() - started, 3), "teacher": "trained" if run.teacher else "random",
               "copied_teacher": run.epochs == 0, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None}
    atomic_write_text(out.parent / "mim.json", json.dumps(summary))
    return summary


def run_mim(params, stage, source, logs: Path, seed: int, teacher: Path | None,
            env: dict[str, str] | None = None) -> tuple[Path, bool]:
    """A MIM stage (runners.training.mim) in its own process: the checkpoint a CLIP stage starts
    from, and whether this call made it (a killed MIM stage starts again: it is short)."""
    from cliprepro import progress
    from runners.training.stage import TRAINER_LOG, in_process, teacher_of

    final = logs / CHECKPOINT
    if final.exists():
        return final, False
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    t = teacher_of(params, stage)
    run = MimRun(model=stage.model, teacher_model=t.model if t else stage.model, teacher=teacher,
                 shards=source.train_pattern(stage.train_shards), epochs=stage.epochs,
                 samples_per_epoch=source.epoch_samples(stage), batch_size=stage.batch_size, lr=stage.lr,
                 mask_ratio=stage.mim.mask_ratio, seed=seed + stage.seed_offset)
    with progress.unit(f"MIM {stage.name} seed {seed}", max(stage.epochs, 1), "epoch") as bar:
        code = in_process(_mim, (run, final, logs / "mim.log"), logs / TRAINER_LOG, env)
        bar.update(max(stage.epochs, 1))
    if code != 0 or not final.exists():
        tail = "\n".join((logs / TRAINER_LOG).read_text().splitlines()[-5:])
        raise RuntimeError(f"MIM stage {stage.name} (seed {seed}) failed with exit {code}: {tail}")
    return final, True


def _mim(run: MimRun, out: Path, log: Path) -> int:
    train(run, out, log)
    return 0
