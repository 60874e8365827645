"""Per-example outcomes as a record keeps them: compressed, base64, hashed (pure; no torch, so
`cliprepro check` and `compare` read records without importing the evaluation stack)."""
from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np


def digest(correct: np.ndarray) -> str:
    """The hash a record keeps beside its per-example outcomes (pack; cliprepro.check verifies it)."""
    return hashlib.sha256(np.asarray(correct, dtype=np.uint8).tobytes()).hexdigest()[:16]


def pack(correct: np.ndarray) -> dict[str, str]:
    """Per-example outcomes, compressed and hashed for the record."""
    raw = np.asarray(correct, dtype=np.uint8).tobytes()
    return {"zlib_b64": base64.b64encode(zlib.compress(raw, 9)).decode(), "sha256": digest(correct),
            "n": str(len(raw))}


class Malformed(ValueError):
    """Stored predictions that do not decode (a hand-edited or truncated record)."""


def unpack(packed: dict[str, str]) -> np.ndarray:
    try:
        return np.frombuffer(zlib.decompress(base64.b64decode(packed["zlib_b64"], validate=True)), dtype=np.uint8)
    except (KeyError, TypeError, ValueError, zlib.error) as exc:  # binascii.Error is a ValueError
        raise Malformed(f"not compressed base64 outcomes ({type(exc).__name__}: {exc})") from None
