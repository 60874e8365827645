"""Architecture runner: exact counts of full-size models on the meta device."""
from __future__ import annotations

import pytest

from runners import architecture, declared_metrics
from runners.schema.params import ArchitectureParams


@pytest.fixture(scope="module")
def flip_counts():
    params = ArchitectureParams(
        text_context_length=32,
        flops=[{"name": "L16", "model": "ViT-L-16-FLIP", "patch_dropouts": [0.5, 0.75]}],
        param_counts=[{"name": "L16", "model": "ViT-L-16-FLIP"}])
    out = architecture.run(params, "paper")
    assert set(out.metrics) == declared_metrics(params)  # every metric it writes is one it declares
    return {k: m.value for k, m in out.metrics.items()}


class TestFlipCounts:
    @pytest.mark.parametrize("metric,lo,hi", [
        ("flops_ratio_L16_mask50", 0.515, 0.525), ("flops_ratio_L16_mask75", 0.275, 0.285),
        ("text_pct_of_image_L16", 4.35, 4.45), ("params_vision_M_L16", 302.5, 303.5),
        ("params_text_M_L16", 108.5, 109.5),
    ])
    def test_counts(self, flip_counts, metric, lo, hi):
        assert lo <= flip_counts[metric] <= hi

    def test_context_77_changes_the_ratios(self):
        params = ArchitectureParams(
            text_context_length=77,
            flops=[{"name": "L16", "model": "ViT-L-16-FLIP", "patch_dropouts": [0.5]}])
        ratio = architecture.run(params, "paper").metrics["flops_ratio_L16_mask50"].value
        assert ratio > 0.54  # the text tower's larger share dilutes the image saving
