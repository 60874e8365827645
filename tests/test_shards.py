"""A webdataset shard pattern: expansion, what cannot be read, and the identity a record keeps."""
from __future__ import annotations

import pytest

from runners.training import shards


def _write(folder, n, size=3):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"{i:03d}.tar").write_bytes(b"x" * size)


class TestExpand:
    @pytest.mark.parametrize("pattern, want", [
        ("/d/{000..002}.tar", ["/d/000.tar", "/d/001.tar", "/d/002.tar"]),
        ("/a/{0..1}.tar::/b/x.tar", ["/a/0.tar", "/a/1.tar", "/b/x.tar"]),
        ("/d/one.tar", ["/d/one.tar"]),
    ])
    def test_table(self, pattern, want):
        assert shards.expand(pattern) == want


class TestUnreadable:
    def test_missing_ones_are_named_remote_ones_are_not_checked(self, tmp_path):
        _write(tmp_path, 2)
        missing, total = shards.unreadable(f"{tmp_path}/{{000..003}}.tar::pipe:curl -s http://x/{{0..1}}.tar")
        assert total == 6 and missing == [f"{tmp_path}/002.tar", f"{tmp_path}/003.tar"]


class TestIdentity:
    def test_names_and_sizes_but_never_the_path(self, tmp_path):
        _write(tmp_path / "a", 3)
        _write(tmp_path / "b", 3)
        a, b = shards.identity(f"{tmp_path}/a/{{000..002}}.tar"), shards.identity(f"{tmp_path}/b/{{000..002}}.tar")
        assert a == b and a["shards"] == 3 and a["bytes"] == 9  # same names, same sizes: the same identity
        assert str(tmp_path) not in repr(a)

    def test_other_data_under_the_same_names_differ(self, tmp_path):
        _write(tmp_path / "a", 3)
        _write(tmp_path / "b", 3, size=4)
        a, b = shards.identity(f"{tmp_path}/a/{{000..002}}.tar"), shards.identity(f"{tmp_path}/b/{{000..002}}.tar")
        assert a["shard_list_sha256"] == b["shard_list_sha256"]
        assert a["shard_sizes_sha256"] != b["shard_sizes_sha256"]

    def test_order_and_count_matter(self, tmp_path):
        _write(tmp_path, 3)
        whole = shards.identity(f"{tmp_path}/{{000..002}}.tar")
        assert shards.identity(f"{tmp_path}/{{000..001}}.tar")["shard_list_sha256"] != whole["shard_list_sha256"]
        assert shards.identity(f"{tmp_path}/002.tar::{tmp_path}/{{000..001}}.tar")["shard_list_sha256"] != whole["shard_list_sha256"]

    def test_remote_shards_have_no_sizes(self):
        got = shards.identity("pipe:curl -s http://x/{0..3}.tar")
        assert got["shards"] == 4 and "bytes" not in got
