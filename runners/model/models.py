"""Building open_clip models from official names or the repo's model_configs/ (registered once)."""
from __future__ import annotations

import copy
from pathlib import Path

import open_clip
import torch

CONFIG_DIR = Path(__file__).resolve().parents[2] / "model_configs"
_registered = False


def register_repo_configs() -> None:
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def model_config(name: str) -> dict:
    register_repo_configs()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise KeyError(f"no open_clip model config {name!r} (official or in {CONFIG_DIR})")
    return copy.deepcopy(cfg)


def uses_syntax_mask(name: str) -> bool:
    """The model's own tokenizer applies CLIPA's syntax text mask (needs NLTK's tagger)."""
    return model_config(name)["text_cfg"].get("tokenizer_kwargs", {}).get("reduction_mask") == "syntax"


def with_overrides(cfg: dict, *, image_size: int | None = None, context_length: int | None = None,
                   vocab_size: int | None = None, patch_dropout: float | None = None) -> dict:
    cfg = copy.deepcopy(cfg)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    if context_length is not None:
        cfg["text_cfg"]["context_length"] = context_length
    if vocab_size is not None:
        cfg["text_cfg"]["vocab_size"] = vocab_size
    if patch_dropout is not None:
        cfg["vision_cfg"]["patch_dropout"] = patch_dropout
    return cfg


def build(cfg: dict, device: torch.device | str = "cpu") -> open_clip.CLIP:
    """An open_clip CLIP (or CustomTextCLIP) from a config dict, on `device` (meta: no memory)."""
    cls = open_clip.CustomTextCLIP if "hf_model_name" in cfg.get("text_cfg", {}) else open_clip.CLIP
    with torch.device(device):
        return cls(**cfg, output_dict=True)


def image_token_count(cfg: dict) -> int:
    """Tokens entering the first vision block without dropout: patches + class token."""
    v = cfg["vision_cfg"]
    side = v["image_size"] if isinstance(v["image_size"], int) else v["image_size"][0]
    return (side // v["patch_size"]) ** 2 + 1


def first_block_tokens(model: open_clip.CLIP) -> "TokenProbe":
    return TokenProbe(model.visual.transformer)


class TokenProbe:
    """Records the sequence length entering the first vision block (the tokens really computed)."""

    def __init__(self, transformer: torch.nn.Module):
        self.seen: list[int] = []
        axis = 1 if getattr(transformer, "batch_first", True) else 0
        self._handle = transformer.resblocks[0].register_forward_pre_hook(
            lambda _m, args: self.seen.append(int(args[0].shape[axis])))

    def close(self) -> None:
        self._handle.remove()
