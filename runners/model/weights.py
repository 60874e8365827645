"""Released weights: where they come from, their sha256, the spec check, and loading them without
executing pickled code.

A source is a `.pt` / `.bin` / `.safetensors` file, an open_clip `local-dir:` folder
(`open_clip_config.json` beside `open_clip_model.safetensors` or `open_clip_pytorch_model.bin`, the
Hugging Face hub layout), or a hub repo (`hf-hub:org/name`, or the repo of an open_clip pretrained
tag) found in the local Hugging Face cache. Nothing is downloaded: a repo missing from the cache is
`NotAvailable`, saying how to fetch it.

When a config travels with the weights, it is compared with the spec the suite declares (open_clip
#771: weights fine-tuned with GELU evaluated with QuickGELU lose accuracy silently); a mismatch is
refused naming the field. A bare state dict cannot say its activation: the declared spec is used
and the record says so.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's order
HUB_CONFIG = "open_clip_config.json"
# open_clip's defaults where a config leaves a field out (OPENAI_DATASET_MEAN / _STD, its transform)
DEFAULTS = {"quick_gelu": False, "pool_type": "tok", "global_average_pool": False, "attentional_pool": False,
            "mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711),
            "interpolation": "bicubic", "resize_mode": "shortest"}


class NotAvailable(Exception):
    """The weights are not here (the claim is `skipped`, saying what to set or fetch)."""


class Refused(Exception):
    """The weights are here but must not be used: a spec mismatch or a pickle that carries code."""


@dataclass(frozen=True)
class Resolved:
    checkpoint: Path
    origin: str  # how it was found, without a user path: "weights.<key> (file)", "hf-hub:org/name (cache)"
    config: dict | None = None  # the open_clip_config.json that travels with the weights


def resolve(configured: str | None, key: str, model: str, tag: str | None) -> Resolved:
    """The user config's weights.<key> when set, else the tag's hub repo from the local cache."""
    if configured:
        if configured.startswith("hf-hub:"):
            return _from_cache(configured.removeprefix("hf-hub:"), key)
        path = Path(configured.removeprefix("local-dir:"))
        if path.is_dir():
            return _from_folder(path, f"weights.{key} (local-dir)")
        return Resolved(path, f"weights.{key} (file)")
    if tag:
        import open_clip

        repo = open_clip.get_pretrained_cfg(model, tag).get("hf_hub", "").rstrip("/")
        if not repo:
            raise NotAvailable(f"open_clip has no hub repo for {model} / {tag}; set weights.{key} in the user config")
        return _from_cache(repo, key)
    raise NotAvailable(f"set weights.{key} in the user config (a .pt / .safetensors file, a local-dir: "
                       "folder or hf-hub:org/name)")


def _from_folder(folder: Path, origin: str) -> Resolved:
    config = folder / HUB_CONFIG
    weights = next((folder / f for f in HUB_WEIGHTS if (folder / f).is_file()), None)
    if weights is None or not config.is_file():
        raise NotAvailable(f"{origin}: the folder needs {HUB_CONFIG} and one of {', '.join(HUB_WEIGHTS)}")
    return Resolved(weights, origin, _hub_config(config, origin))


def _hub_config(path: Path, origin: str) -> dict:
    """open_clip's folder config, read; the user's file, so unreadable JSON is bad input (exit 2)."""
    from cliprepro.errors import InputError

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or bytes that are not UTF-8
        raise InputError(path, "(file)", f"{origin}: open_clip's model config is not readable JSON ({exc})") from None


def _from_cache(repo: str, key: str) -> Resolved:
    from huggingface_hub import try_to_load_from_cache

    found = {f: try_to_load_from_cache(repo, f) for f in (HUB_CONFIG, *HUB_WEIGHTS)}
    weights = next((Path(found[f]) for f in HUB_WEIGHTS if isinstance(found[f], str)), None)
    if weights is None:
        raise NotAvailable(f"hf-hub:{repo} is not in the local Hugging Face cache (HF_HUB_CACHE); nothing is "
                           f"downloaded: fetch it with `huggingface-cli download {repo}` or set weights.{key}")
    config = _hub_config(Path(found[HUB_CONFIG]), f"hf-hub:{repo}") if isinstance(found[HUB_CONFIG], str) else None
    return Resolved(weights, f"hf-hub:{repo} (cache)", config)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def declared_spec(model: str, tag: str | None, quick_gelu: bool, image_size: int | None,
                  resize_mode: str, interpolation: str) -> dict:
    """What the suite says the weights are: the architecture's open_clip config, the declared
    activation and size, the tag's mean / std (open_clip's defaults without a tag), the protocol's
    resize mode and interpolation."""
    import open_clip

    from runners.model.models import register_repo_configs

    register_repo_configs()
    vision = open_clip.get_model_config(model)["vision_cfg"]
    pre = open_clip.get_pretrained_cfg(model, tag) if tag else {}
    return {"quick_gelu": quick_gelu, "image_size": image_size or vision["image_size"],
            **{k: vision.get(k, DEFAULTS[k]) for k in ("pool_type", "global_average_pool", "attentional_pool")},
            "mean": tuple(pre.get("mean", DEFAULTS["mean"])), "std": tuple(pre.get("std", DEFAULTS["std"])),
            "resize_mode": resize_mode, "interpolation": interpolation}


def carried_spec(config: dict) -> dict:
    """The same fields as the config that travels with the weights says them."""
    model, pre = config.get("model_cfg", config), config.get("preprocess_cfg", {})
    vision = model.get("vision_cfg", {})
    size = vision.get("image_size")
    return {"quick_gelu": bool(model.get("quick_gelu", DEFAULTS["quick_gelu"])),
            "image_size": size[0] if isinstance(size, (list, tuple)) else size,
            **{k: vision.get(k, DEFAULTS[k]) for k in ("pool_type", "global_average_pool", "attentional_pool")},
            "mean": tuple(pre.get("mean", DEFAULTS["mean"])), "std": tuple(pre.get("std", DEFAULTS["std"])),
            "resize_mode": pre.get("resize_mode", DEFAULTS["resize_mode"]),
            "interpolation": pre.get("interpolation", DEFAULTS["interpolation"])}


def spec_mismatches(declared: dict, carried: dict) -> list[str]:
    """Each field where the checkpoint's config and the suite's declared spec differ."""
    out = []
    for field, want in declared.items():
        have = carried[field]
        same = (all(abs(a - b) < 1e-6 for a, b in zip(have, want)) and len(have) == len(want)
                if isinstance(want, tuple) else have == want)
        if not same:
            out.append(f"{'activation (quick_gelu)' if field == 'quick_gelu' else field}: the checkpoint's "
                       f"{HUB_CONFIG} says {have!r}, the suite declares {want!r}")
    return out


def load(source: Resolved, model: str, spec: dict, device, precision: str = "fp32"):
    """(model, transform, tokenizer) built from the declared spec, the weights loaded with
    weights_only=True (safetensors need no pickle at all)."""
    import open_clip

    from runners.model.models import register_repo_configs

    register_repo_configs()
    try:
        net, _, transform = open_clip.create_model_and_transforms(
            model, pretrained=str(source.checkpoint), device=device, precision=precision, weights_only=True,
            force_quick_gelu=spec["quick_gelu"], force_image_size=spec["image_size"],
            image_mean=spec["mean"], image_std=spec["std"], image_interpolation=spec["interpolation"],
            image_resize_mode=spec["resize_mode"])
    except pickle.UnpicklingError as exc:  # torch's weights_only unpickler met a global it will not run
        raise Refused(f"{source.origin}: the checkpoint carries pickled code or objects; it was not executed "
                      f"(loaded with weights_only=True): {str(exc).splitlines()[0]}") from None
    except RuntimeError as exc:  # load_state_dict(strict=True): keys or shapes of another architecture
        raise Refused(f"{source.origin}: not a {model} checkpoint: {str(exc).splitlines()[0][:300]}") from None
    net.eval()
    return net, transform, open_clip.get_tokenizer(model)
