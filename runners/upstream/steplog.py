"""Where a training stage's time goes: waiting for data vs the step, and the bare step rate.

open_clip_train's loop is `for batch in dataloader: <step>`. Wrapping the loader's iterator splits
each epoch's wall time into the time `next()` blocks (data wait; the first batch of an epoch,
which pays the workers' start, kept apart) and the time between batches (the step). After
training, the same model in the same process times steps on one synthetic batch held in memory
(runners.timing: the one timing recipe): the bare step rate the training path is compared with.

The child writes PATH (JSON, atomically, at each epoch's end) and PATH's `.progress` sibling (the
global step, at most twice a second, outside both timed intervals) that the parent's bar follows.
`summary` turns the JSON into a stage's rates (pure).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

PROGRESS_EVERY_S = 0.5


def write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def progress_path(log: Path) -> Path:
    return log.with_name(log.name + ".progress")


class StepLog:
    """Per-epoch timings of one training process; epochs of a resumed run are appended."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"epochs": []}
        self.steps_done = sum(e["steps"] for e in self.data["epochs"])
        self._shown = 0.0

    def progress(self) -> None:
        now = time.monotonic()
        if now - self._shown >= PROGRESS_EVERY_S:
            self._shown = now
            write_atomic(progress_path(self.path), {"steps": self.steps_done})

    def add_epoch(self, epoch: dict) -> None:
        self.data["epochs"].append(epoch)
        write_atomic(self.path, self.data)
        write_atomic(progress_path(self.path), {"steps": self.steps_done})

    def set_bare_step(self, bare: dict) -> None:
        self.data["bare_step"] = bare
        write_atomic(self.path, self.data)


class TimedLoader:
    """open_clip_train's train loader, timed (attributes such as num_batches pass through)."""

    def __init__(self, loader, log: StepLog):
        self._loader, self._log = loader, log

    def __getattr__(self, name: str):
        return getattr(self._loader, name)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        log, it = self._log, iter(self._loader)
        epoch = {"steps": 0, "samples": 0, "first_wait_s": 0.0, "wait_s": 0.0, "step_s": 0.0}
        last = None
        while True:
            log.progress()  # outside both intervals: between the step's end and the next wait
            t0 = time.perf_counter()
            if last is not None:
                epoch["step_s"] += t0 - last
            try:
                batch = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            epoch["first_wait_s" if last is None else "wait_s"] += t1 - t0
            epoch["steps"] += 1
            epoch["samples"] += len(batch[0])
            log.steps_done += 1
            last = t1
            yield batch
        log.add_epoch({k: round(v, 6) if isinstance(v, float) else v for k, v in epoch.items()})


def bare_step(model, batch_size: int, min_block_s: float) -> dict:
    """Samples/s of the trained model's step on one synthetic batch in memory: forward, CLIP loss,
    backward, fused AdamW as the trainer's (runners.timing.trainstep's step; the timing recipe of
    runners.timing.timing)."""
    import torch

    from runners.schema.params import Arm, OptimizerCfg
    from runners.timing.timing import interleaved_rounds
    from runners.timing.trainstep import make_step

    side = model.visual.image_size
    cfg = {"vision_cfg": {"image_size": side[0] if isinstance(side, (tuple, list)) else side},
           "text_cfg": {"context_length": model.context_length, "vocab_size": model.vocab_size}}
    model.train()
    step = make_step(model, "full", batch_size, cfg, torch.device("cpu"), "fp32", Arm(name="bare"),
                     OptimizerCfg(), seed=0, fused_adamw=True)
    s_per_step = interleaved_rounds({"bare": step}, rounds=1, min_block_s=min_block_s, warmup_steps=2,
                                    device=torch.device("cpu"))["bare"][0]
    return {"batch_size": batch_size, "s_per_step": round(s_per_step, 6),
            "samples_per_s": round(batch_size / s_per_step, 3)}


def summary(data: dict) -> dict:
    """A stage's rates over its epochs: end-to-end and step-only samples/s, the fraction of wall
    time waiting for data, and the end-to-end rate over the bare step rate (when measured)."""
    epochs = data.get("epochs", [])
    samples = sum(e["samples"] for e in epochs)
    wait_s = sum(e["first_wait_s"] + e["wait_s"] for e in epochs)
    step_s = sum(e["step_s"] for e in epochs)
    if not samples or step_s <= 0:
        return {}
    out = {"train_samples_per_s": samples / (wait_s + step_s), "step_samples_per_s": samples / step_s,
           "data_wait_fraction": wait_s / (wait_s + step_s)}
    bare = data.get("bare_step")
    if bare:
        out["bare_step_samples_per_s"] = bare["samples_per_s"]
        out["train_vs_bare_step"] = out["train_samples_per_s"] / bare["samples_per_s"]
    return out
