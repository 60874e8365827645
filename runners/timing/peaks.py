"""Peak FLOP rates: datasheet (dense, per precision) and a matmul peak measured on the device."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from runners.timing.timing import steps_per_block, time_block

# Dense tensor-core peaks from the vendors' datasheets (no sparsity), FLOP/s. fp32 = plain fp32
# (no TF32). Matched by substring of torch.cuda.get_device_name, most specific first.
DATASHEET = (
    ("H100 PCIe", {"bf16": 756e12, "fp32": 51.2e12}),
    ("H100", {"bf16": 989.4e12, "fp32": 66.9e12}),   # SXM5
    ("H200", {"bf16": 989.4e12, "fp32": 66.9e12}),
    ("A100", {"bf16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362.05e12, "fp32": 91.6e12}),
)
A100_BF16 = 312e12
# The device classes a published cost counts, with the dense bf16 peak of one unit and what a
# record's device name must contain to be that class (a TPU never is: its claims stay modelled).
# TPU v3: 123 TFLOP/s bf16 per chip, two TensorCores per chip (Google Cloud TPU v3 datasheet).
@dataclass(frozen=True)
class Target:
    unit: str  # one device of the class, as the claim counts it
    peak_bf16: float  # FLOP/s of one unit
    marker: str | None  # in a record's device name when it ran on this class (None: never)
    plural: str

    @property
    def days(self) -> str:
        return f"{self.unit}-days"

    @property
    def hours(self) -> str:
        return f"{self.unit}-hours" if self.marker is None else "GPU-hours"


TARGETS = {"a100": Target("A100", A100_BF16, "A100", "GPUs"),
           "tpu_v3_core": Target("TPU-v3 core", 61.5e12, None, "TPU-v3 cores")}


def datasheet_peak(device_name: str, precision: str) -> tuple[float | None, str]:
    for key, peaks in DATASHEET:
        if key in device_name:
            return peaks[precision], f"datasheet {key} {precision}"
    return None, f"no datasheet peak known for {device_name!r}"


def measured_matmul_peak(device: torch.device, precision: str, rounds: int = 3) -> float:
    """Best FLOP/s of a square matmul over `rounds` timed blocks of >= 1 s (the timing recipe)."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def step() -> None:
        torch.mm(a, b)

    step()
    steps = steps_per_block(step, 1.0, device)
    best_s = min(time_block(step, steps, device) for _ in range(rounds))
    return 2 * n**3 / best_s
