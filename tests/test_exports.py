"""clip_benchmark result files: clip_benchmark's own `build` command reads them into its CSV."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

from cliprepro import record as rec
from cliprepro.exports import clip_benchmark_results
from tests.conftest import REPO


def _release_records():
    return [rec.read(p) for p in sorted((REPO / "results").glob("clipa_l16__proxy__run__*.json"))]


class TestClipBenchmarkResults:
    def test_one_file_per_evaluation_and_set(self):
        records = _release_records()
        files = clip_benchmark_results(records)
        rid, record = records[-1]
        points = [p for p in record.points if "acc1_mean" in p]
        assert points
        # four attribute sets and one retrieval set per evaluated (stage, seed)
        mine = [n for n in files if f"__{rid}__" in n]
        assert len(mine) == 5 * len(points)
        p = points[0]
        data = json.loads(files[f"clipa_l16__{rid}__{p['stage']}__seed{p['seed']}__shape.json"])
        assert data["task"] == "zeroshot_classification" and data["metrics"]["acc1"] == p["acc1_shape"] / 100
        assert data["dataset"] == "cliprepro_proxy/shape" and data["model"] == "ViT-TinyL-CL16"

    def test_clip_benchmark_build_reads_them(self, tmp_path):
        files = clip_benchmark_results(_release_records())
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        out = tmp_path / "benchmark.csv"
        subprocess.run([sys.executable, "-m", "clip_benchmark.cli", "build", str(tmp_path), "--output", str(out)],
                       check=True, capture_output=True)
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == len(files)
        shape = [r for r in rows if r["dataset"] == "cliprepro_proxy/shape"]
        assert shape and all(0 <= float(r["acc1"]) <= 1 and r["model_fullname"].startswith("ViT-TinyL-CL16 cliprepro:")
                             for r in shape)
        retrieval = [r for r in rows if r["task"] == "zeroshot_retrieval"]
        assert retrieval and all(float(r["image_retrieval_recall@5"]) >= float(r["image_retrieval_recall@1"])
                                 for r in retrieval)
