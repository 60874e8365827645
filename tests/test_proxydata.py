"""Proxy data: deterministic across processes, cached by fingerprint, in the layouts upstream reads."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from runners.training.proxydata import ATTRIBUTES, PHRASINGS, DataSpec, chance_pct, ensure, sample
from tests.conftest import REPO

SPEC = DataSpec(seed=3, image_px=32, train_samples=64, eval_samples=20, shard_samples=32)

DIGEST = """
import hashlib
from runners.training.proxydata import DataSpec, sample
spec = DataSpec(seed=3, image_px=32, train_samples=64, eval_samples=20, shard_samples=32)
h = hashlib.sha256()
for i in range(40):
    s = sample(spec, "train", i)
    h.update(s.image.tobytes() + s.caption.encode() + repr(sorted(s.labels.items())).encode())
print(h.hexdigest())
"""


class TestSample:
    def test_same_pixels_captions_labels_in_another_process(self):
        runs = {subprocess.run([sys.executable, "-c", DIGEST], cwd=REPO, capture_output=True, text=True,
                               env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed}).stdout
                for seed in ("1", "2")}
        assert len(runs) == 1 and len(runs.pop().strip()) == 64

    def test_caption_names_the_labels(self):
        for i in range(50):
            s = sample(SPEC, "eval", i)
            for attribute, classes in ATTRIBUTES.items():
                assert classes[s.labels[attribute]] in s.caption

    def test_both_phrasing_kinds_occur_and_filler_first_truncates_to_filler(self):
        kinds = {sample(SPEC, "train", i).content_first for i in range(100)}
        assert kinds == {True, False}
        for template, content_first in PHRASINGS:
            first_six = template.split()[:6]
            assert any("{" in w for w in first_six) == content_first

    @pytest.mark.parametrize("split", ["train", "eval"])
    def test_splits_and_seeds_differ(self, split):
        a = sample(SPEC, split, 0).image
        assert (a != sample(DataSpec(seed=4), split, 0).image).any()


class TestShards:
    def test_layout_and_cache(self, tmp_path):
        out = ensure(SPEC, tmp_path)
        assert out.name == f"proxy-{SPEC.fingerprint()}"
        sizes = json.loads((out / "train" / "sizes.json").read_text())
        assert sizes == {"shard-00000.tar": 32, "shard-00001.tar": 32}
        assert sorted(p.name for p in (out / "train").glob("*.tar")) == sorted(sizes)  # no empty shard
        for attribute, classes in ATTRIBUTES.items():
            root = out / "eval" / f"wds_{attribute}"
            assert (root / "test" / "nshards.txt").read_text().strip() == "1"
            assert (root / "classnames.txt").read_text().split("\n")[: len(classes)] == list(classes)
            assert "{c}" in (root / "zeroshot_classification_templates.txt").read_text()
        assert (out / "eval" / "wds_retrieval" / "dataset_type.txt").read_text().strip() == "retrieval"
        before = hashlib.sha256((out / "train" / "shard-00000.tar").read_bytes()).hexdigest()
        assert ensure(SPEC, tmp_path) == out  # cached: not rebuilt
        assert hashlib.sha256((out / "train" / "shard-00000.tar").read_bytes()).hexdigest() == before
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building-")]

    @pytest.mark.parametrize("rows,per_shard,names", [(5, 2, ["s-0.tar", "s-1.tar", "s-2.tar"]),
                                                      (4, 2, ["s-0.tar", "s-1.tar"]), (1, 8, ["s-0.tar"])])
    def test_shard_writer_names_and_counts(self, tmp_path, rows, per_shard, names):
        import webdataset as wds

        from runners.training.proxydata import _write_shards

        got = _write_shards(tmp_path, "s-%d.tar", [{"__key__": f"{i:03d}", "txt": str(i)} for i in range(rows)], per_shard)
        assert got == names == sorted(p.name for p in tmp_path.glob("*.tar"))
        keys = [x["__key__"] for x in wds.WebDataset([str(tmp_path / n) for n in names], shardshuffle=False)]
        assert keys == [f"{i:03d}" for i in range(rows)]

    def test_members_have_no_pax_headers_and_builds_are_byte_identical(self, tmp_path):
        import tarfile

        first = ensure(SPEC, tmp_path / "a") / "train" / "shard-00000.tar"
        with tarfile.open(first) as tar:
            members = tar.getmembers()
        assert len(members) == 2 * 32  # png + txt per sample
        assert all(m.pax_headers == {} for m in members)  # one header per member, not two
        second = ensure(SPEC, tmp_path / "b") / "train" / "shard-00000.tar"
        assert first.read_bytes() == second.read_bytes()

    def test_suites_asking_at_once_build_it_once(self, tmp_path, monkeypatch):
        import threading
        import time

        from runners.training import proxydata

        builds = []

        def fake_build(spec, out):
            builds.append(out)
            time.sleep(0.1)
            (out / "spec.json").write_text("{}")

        monkeypatch.setattr(proxydata, "_build", fake_build)
        got = []
        threads = [threading.Thread(target=lambda: got.append(ensure(SPEC, tmp_path))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(builds) == 1 and len(set(got)) == 1 and (got[0] / "spec.json").exists()

    def test_fingerprint_follows_parameters(self):
        assert SPEC.fingerprint() != DataSpec(seed=3, image_px=48).fingerprint()


@pytest.mark.parametrize(("attributes", "pct"), [
    (["size"], 50.0),
    (["shape", "color"], (20.0 + 12.5) / 2),
    (["shape", "color", "size", "position"], 25.625),
])
def test_chance_is_the_uniform_guess_mean(attributes, pct):
    assert chance_pct(attributes) == pytest.approx(pct)
