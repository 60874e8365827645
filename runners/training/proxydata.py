"""Procedural image-caption data for proxy training: shapes x colours x sizes x positions on noisy
backgrounds, captions in several phrasings (content-first and filler-first mixed).

Truncating a filler-first caption to a short context keeps only filler words, while open_clip's
syntax mask keeps nouns and adjectives: the setting where CLIPA's text strategies differ.
Every sample is a pure function of (seed, split, index), so the data are the same in any process
and any worker split. Written as webdataset shards (training, with sizes.json) and in
clip_benchmark's local wds layout (one classification set per attribute, one retrieval set),
cached under build/data/ by a fingerprint of the parameters and GENERATOR_VERSION.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle", "cross", "ring")
COLORS = {"red": (225, 35, 35), "green": (30, 170, 60), "blue": (35, 75, 225), "yellow": (235, 215, 30),
          "purple": (150, 50, 195), "orange": (245, 135, 20), "white": (250, 250, 250), "black": (10, 10, 10)}
SIZES = ("small", "large")
POSITIONS = ("center", "top left", "top right", "bottom left", "bottom right")
ATTRIBUTES = {"shape": SHAPES, "color": tuple(COLORS), "size": SIZES, "position": POSITIONS}
PHRASINGS = (  # (template, content_first)
    ("a {size} {color} {shape} in the {position}", True),
    ("{color} {shape} , {size} , {position}", True),
    ("a {size} {shape} colored {color} at the {position}", True),
    ("a photo of the image of a picture showing a {size} {color} {shape} in the {position}", False),
    ("this is an image of a scene with a {color} {size} {shape} , {position}", False),
)
TEMPLATES = {"shape": ("a {c}", "a {c} on a noisy background"),
             "color": ("a {c} shape", "something {c}"),
             "size": ("a {c} shape", "a {c} object"),
             "position": ("a shape in the {c}", "something at the {c}")}


@dataclass(frozen=True)
class DataSpec:
    seed: int = 0
    image_px: int = 32
    train_samples: int = 8192
    eval_samples: int = 1000
    shard_samples: int = 2048

    def label(self) -> str:
        """How a training record names its data (inputs.data; cliprepro.check compares it)."""
        return f"proxy procedural data {self.fingerprint()}"

    def fingerprint(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # uint8 [px, px, 3]
    caption: str
    labels: dict[str, int]  # attribute -> class index
    content_first: bool


def _centre(position: str, px: int, half: int, jitter: np.ndarray) -> tuple[int, int]:
    lo, hi = half + 1, px - half - 2
    mid = px // 2
    x = {"left": lo, "right": hi}.get(position.split()[-1], mid) if position != "center" else mid
    y = {"top": lo, "bottom": hi}.get(position.split()[0], mid) if position != "center" else mid
    return int(np.clip(x + jitter[0], lo, hi)), int(np.clip(y + jitter[1], lo, hi))


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, half: int, rgb: tuple) -> None:
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=rgb)
    elif shape == "cross":
        t = max(1, half // 3)
        draw.rectangle((cx - half, cy - t, cx + half, cy + t), fill=rgb)
        draw.rectangle((cx - t, cy - half, cx + t, cy + half), fill=rgb)
    else:  # ring
        draw.ellipse(box, outline=rgb, width=max(2, half // 3))


def sample(spec: DataSpec, split: str, index: int) -> Sample:
    """One sample, a pure function of (spec, split, index)."""
    rng = np.random.default_rng([spec.seed, {"train": 0, "eval": 1}[split], index])
    labels = {name: int(rng.integers(len(values))) for name, values in ATTRIBUTES.items()}
    shape, color = SHAPES[labels["shape"]], tuple(COLORS)[labels["color"]]
    size, position = SIZES[labels["size"]], POSITIONS[labels["position"]]
    px = spec.image_px
    noise = rng.integers(70, 186, size=(px, px, 3), dtype=np.uint8)  # mid-grey noise: black and white show
    img = Image.fromarray(noise)
    half = round(px * (0.13 if size == "small" else 0.24))
    cx, cy = _centre(position, px, half, rng.integers(-1, 2, size=2))
    _draw(ImageDraw.Draw(img), shape, cx, cy, half, COLORS[color])
    template, content_first = PHRASINGS[int(rng.integers(len(PHRASINGS)))]
    caption = template.format(size=size, color=color, shape=shape, position=position)
    return Sample(np.asarray(img), caption, labels, content_first)


def chance_pct(attributes: list[str]) -> float:
    """Expected zero-shot acc1 (%) of a uniform guess, averaged over the attributes evaluated."""
    return 100 * sum(1 / len(ATTRIBUTES[a]) for a in attributes) / len(attributes)


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)  # lossless, cheap to decode
    return buf.getvalue()


SHARD_MTIME = 0  # a whole-second member time: see _write_shards


def _write_shards(folder: Path, pattern: str, rows: list[dict], per_shard: int) -> list[str]:
    """webdataset's ShardWriter: `pattern` (printf style, e.g. shard-%05d.tar), per_shard rows each.

    With a fixed integer mtime: by default each member gets time.time(), a float that tarfile can
    only store in a PAX extended header, so every member costs two headers to parse. Those headers
    were ~14% of the proxy loader's CPU time (the trainer's worker shares the CPU with the step),
    and the shards were never byte-identical twice."""
    import webdataset as wds  # here, not at the top: cliprepro check reads DataSpec without torch

    folder.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(folder / pattern), maxcount=per_shard, verbose=0, mtime=SHARD_MTIME) as sink:
        for row in rows:
            sink.write(row)
    return [pattern % i for i in range(-(-len(rows) // per_shard))]


def _build(spec: DataSpec, out: Path) -> None:
    train = [sample(spec, "train", i) for i in range(spec.train_samples)]
    rows = [{"__key__": f"{i:08d}", "png": _png(s.image), "txt": s.caption} for i, s in enumerate(train)]
    shards = _write_shards(out / "train", "shard-%05d.tar", rows, spec.shard_samples)
    counts = {n: min(spec.shard_samples, spec.train_samples - i * spec.shard_samples) for i, n in enumerate(shards)}
    (out / "train" / "sizes.json").write_text(json.dumps(counts, indent=1))
    evals = [sample(spec, "eval", i) for i in range(spec.eval_samples)]
    pngs = [_png(s.image) for s in evals]
    for attribute, classes in ATTRIBUTES.items():
        root = out / "eval" / f"wds_{attribute}"
        rows = [{"__key__": f"{i:08d}", "png": p, "cls": s.labels[attribute]} for i, (s, p) in enumerate(zip(evals, pngs))]
        n = _write_shards(root / "test", "%d.tar", rows, spec.shard_samples)
        (root / "test" / "nshards.txt").write_text(f"{len(n)}\n")
        (root / "classnames.txt").write_text("\n".join(classes) + "\n")
        (root / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES[attribute]) + "\n")
    root = out / "eval" / "wds_retrieval"
    rows = [{"__key__": f"{i:08d}", "png": p, "txt": s.caption} for i, (s, p) in enumerate(zip(evals, pngs))]
    n = _write_shards(root / "test", "%d.tar", rows, spec.shard_samples)
    (root / "test" / "nshards.txt").write_text(f"{len(n)}\n")
    (root / "dataset_type.txt").write_text("retrieval\n")
    (out / "eval" / "labels.json").write_text(json.dumps(
        {"content_first": [s.content_first for s in evals], "captions": [s.caption for s in evals],
         "labels": [s.labels for s in evals]}))
    (out / "spec.json").write_text(json.dumps({"version": GENERATOR_VERSION, **asdict(spec)}, indent=1))


_BUILDING = threading.Lock()  # suites run at once (cliprepro.batch) ask for the same data: one builds it


def ensure(spec: DataSpec, cache: Path) -> Path:
    """The data folder for `spec`, built once (atomically: a temp folder renamed into place; one
    build at a time in a process, so suites started together do not each build the same data)."""
    out = cache / f"proxy-{spec.fingerprint()}"
    with _BUILDING:
        if not (out / "spec.json").exists():
            _build_into(spec, cache, out)
    return out


def _build_into(spec: DataSpec, cache: Path, out: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
    try:
        _build(spec, tmp)
        tmp.rename(out)
    except OSError:
        if not (out / "spec.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
