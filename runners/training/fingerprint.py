"""The training path's fingerprint: what one short reference training does, not where its code is.

A reference stage (tiny model, 512 procedural samples, 8 steps, one thread) is trained through
the same path every proxy stage takes (runners.training.stage.run_stage -> runners.upstream.openclip_main
-> open_clip_train) with the loss logged at every step. Its per-step losses, rounded to
LOSS_DECIMALS, hashed, are the fingerprint:

- moving or refactoring code leaves it unchanged; a change to what training computes (data order,
  masks, optimizer, schedule, loss, model) changes the losses, hence the fingerprint;
- rounding keeps it stable across CPUs whose float arithmetic differs in the last bits (a loss
  near a rounding edge can still flip it: the test then says so, and the constant is re-made).

COMMITTED is the fingerprint of the code in this commit. The stage cache key and every
calibration record carry it; a slow test recomputes it (tests/test_fingerprint.py), `cliprepro
calibrate` recomputes it before training, and `cliprepro validate` refuses calibration records
made on another. After a change that alters training, run
`python -m runners.training.fingerprint` and commit the new value with a recalibration.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

COMMITTED = "03f53dcf86b35d58"
LOSS_DECIMALS = 3
_LOSS = re.compile(r"Train Epoch: \d+ \[\s*\d+/\d+.*?Contrastive_loss: ([0-9.]+)")


def reference_losses(work: Path) -> list[float]:
    """Per-step training losses of the reference stage, trained fresh in `work`."""
    from runners.schema.train_params import Stage, TrainParams
    from runners.training.stage import STAGE_DIR, run_stage
    from runners.training.proxydata import DataSpec
    from runners.training.sources import proxy

    spec = DataSpec(seed=0, image_px=16, train_samples=512, eval_samples=10, shard_samples=256)
    data = proxy(spec, work / "data", [])
    stage = Stage(name="reference", model="ViT-Tiny48-P8", image_size=16, epochs=1, batch_size=64,
                  lr=1e-3, warmup=2, patch_dropout=0.5, context_length=8)
    params = TrainParams(stages=[stage], seeds=[0], data=spec.__dict__, workers=1)
    logs = work / "train"
    run_stage(params, stage, data, logs, seed=0, init=None, extra_argv=["--log-every-n-steps", "1"],
              env={"OMP_NUM_THREADS": "1"})
    text = (logs / STAGE_DIR / "out.log").read_text()
    return [float(x) for x in _LOSS.findall(text)]


def of_losses(losses: list[float]) -> str:
    rounded = [f"{x:.{LOSS_DECIMALS}f}" for x in losses]
    return hashlib.sha256(json.dumps(rounded).encode()).hexdigest()[:16]


def compute() -> tuple[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="cliprepro-fingerprint-") as tmp:
        losses = reference_losses(Path(tmp))
    if not losses:
        raise RuntimeError("the reference training logged no losses")
    return of_losses(losses), losses


def main() -> int:
    value, losses = compute()
    print(f"training-path fingerprint {value} (committed {COMMITTED}); losses {losses}")
    return 0 if value == COMMITTED else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
