"""Child process for CPU peak memory of one sweep arm: prints the peak-RSS growth in MiB.

ru_maxrss is a high-water mark per process, so each arm gets its own process (docs/design.md).
"""
from __future__ import annotations

import json
import resource
import sys

import torch

from runners.schema.params import ThroughputParams
from runners.timing.trainstep import arm_config, build_arm, make_step


def main() -> None:
    job = json.loads(sys.stdin.read())
    params = ThroughputParams.model_validate(job["params"])
    arm = next(a for a in params.arms if a.name == job["arm"])
    cfg = arm_config(params, arm)
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    device = torch.device("cpu")
    model = build_arm(cfg, arm, device, params.seed)
    step = make_step(model, job["mode"], arm.batch_size or params.batch_size, cfg, device,
                     params.precision, arm, params.optimizer, params.seed)
    step()
    step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024)


if __name__ == "__main__":
    main()
