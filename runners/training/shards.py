"""A webdataset shard pattern as open_clip_train reads it: braces expanded, '::' between sources.

Pure (braceexpand and the file system only): the launcher's preflight, the user config's check of
`own_data` and a record's dataset identity all read a pattern through these two functions.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def remote(source: str) -> bool:
    """A source read through a URL or a pipe: not checked on this file system."""
    return "://" in source or source.startswith("pipe:")


def expand(pattern: str) -> list[str]:
    """Every shard of the pattern, in the order the pattern gives them."""
    from braceexpand import braceexpand

    return [shard for source in pattern.split("::") for shard in braceexpand(source)]


def unreadable(pattern: str) -> tuple[list[str], int]:
    """(local shards missing or unreadable, shards in all); remote sources are not checked."""
    shards = expand(pattern)
    return [s for s in shards if not remote(s) and not os.access(s, os.R_OK)], len(shards)


def identity(pattern: str) -> dict:
    """The shards as a record may hold them, never their path: how many, a hash of their names in
    order and, when every one is a local file, of their sizes too (other data under the same names)."""
    shards = expand(pattern)
    names = "\n".join(Path(s).name for s in shards)
    out = {"shards": len(shards), "shard_list_sha256": hashlib.sha256(names.encode()).hexdigest()[:16]}
    if shards and not any(remote(s) for s in shards) and all(os.path.isfile(s) for s in shards):
        sizes = "\n".join(f"{Path(s).name}\0{os.path.getsize(s)}" for s in shards)
        out["shard_sizes_sha256"] = hashlib.sha256(sizes.encode()).hexdigest()[:16]
        out["bytes"] = sum(os.path.getsize(s) for s in shards)
    return out
