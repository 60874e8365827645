"""The only entry point to open_clip_train, also under torchrun at paper scale:

    python -m runners.upstream.openclip_main ARGS...                      # one process (proxy)
    torchrun --nproc_per_node 8 -m runners.upstream.openclip_main ARGS... # paper scale

It registers the repo's model configs, applies the compat fixes (webdataset end-of-shard marker;
NLTK offline syntax mask, which then also holds in forked DataLoader workers), and turns
open_clip_train's silent failures into exit codes: "Experiment already exists" returns -1 from
main() and would otherwise exit 0.

Three options of ours, taken out of ARGS before open_clip_train parses them:
  --cliprepro-mask-kind grid|block   CLIPA's grid / block mask in place of open_clip's random
                                     PatchDropout (the ratio is --force-patch-dropout's)
  --cliprepro-text-mask syntax|random|simple
                                     open_clip's tokenizer reduction_mask for the captions (CLIPA's
                                     "block" is open_clip's "simple", accepted too); cut to
                                     --force-context-length
  --cliprepro-token-probe PATH       write the token counts entering the first image and text
                                     blocks in the first training batch, and which patch positions
                                     the image mask kept (first 16 samples), to PATH (JSON)
  --cliprepro-step-log PATH          per epoch, time waiting for data vs step time, and the global
                                     step for a progress bar (runners.upstream.steplog)
  --cliprepro-bare-step-s SECONDS    after training, time the same model's bare step (synthetic
                                     batch in memory) for >= SECONDS, into the step log
  --cliprepro-max-loss BOUND         a loss above BOUND is a divergence (a non-finite loss always
                                     is): training stops with exit status 4 (runners.upstream.divergence)
  --cliprepro-optimizer-kwargs JSON  keyword settings for a timm optimizer (--opt timm/NAME) that
                                     open_clip_train does not pass, e.g. Lamb's max_grad_norm and
                                     always_adapt: explicit, never timm's defaults
  --cliprepro-attention flash|math   the SDPA kernels training steps may use (torch's sdpa_kernel);
                                     the kernels the first step ran are added to the token probe
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
import types
from pathlib import Path

EXISTS = 3  # exit status for "Experiment already exists" (open_clip_train prints it and returns -1)
REDUCTION_MASK = {"truncate": "", "syntax": "syntax", "random": "random", "simple": "simple",
                  "block": "simple"}  # CLIPA's name for open_clip's "simple"
OURS = ("--cliprepro-mask-kind", "--cliprepro-text-mask", "--cliprepro-token-probe", "--cliprepro-step-log",
        "--cliprepro-bare-step-s", "--cliprepro-max-loss", "--cliprepro-optimizer-kwargs", "--cliprepro-attention")
# flash for the image tower; the text tower's causal mask needs math (CPU flash takes no mask)
ATTENTION = {"flash": ("FLASH_ATTENTION", "MATH"), "math": ("MATH",)}


def split_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """(open_clip_train's arguments, ours by name without the prefix)."""
    rest, ours, i = [], {}, 0
    while i < len(argv):
        if argv[i] in OURS:
            if i + 1 >= len(argv):
                raise SystemExit(f"error: {argv[i]} needs a value")
            ours[argv[i].removeprefix("--cliprepro-")] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    return rest, ours


PROBE_SAMPLES = 16  # samples whose kept patch positions are recorded (enough to tell the masks apart)


def kept_positions(before, after) -> list[list[int]]:
    """Patch positions (class token excluded) that survived the image mask, per sample: each kept
    token is a copy of one input token (position embeddings make them distinct)."""
    import torch

    out = []
    for b in range(min(PROBE_SAMPLES, before.shape[0])):
        x, y = before[b, 1:], after[b, 1:]
        match = (y[:, None, :] == x[None, :, :]).all(-1)  # [kept, patches]
        out.append(sorted(int(i) for i in torch.argmax(match.int(), dim=1)))
    return out


def write_first_batch_tokens(model, path: Path) -> None:
    """Record, once, the sequence lengths entering the first image and text blocks in training and
    the patch positions the image mask (open_clip's PatchDropout or ours) kept."""
    seen: dict = {}
    handles = []

    def done() -> None:
        if {"image_tokens", "text_tokens", "image_positions"} <= set(seen):
            _replace_json(path, seen)
            for h in handles:
                h.remove()

    def hook(name: str, axis: int):
        def record(module, args):
            if module.training and name not in seen:
                seen[name] = int(args[0].shape[axis])
                done()
        return record

    def mask_hook(module, args, output):
        if model.visual.training and "image_positions" not in seen:
            seen["image_grid"] = list(model.visual.grid_size)
            seen["image_positions"] = kept_positions(args[0].detach(), output.detach())
            done()

    for name, tower in (("image_tokens", model.visual.transformer), ("text_tokens", model.transformer)):
        axis = 1 if getattr(tower, "batch_first", True) else 0
        handles.append(tower.resblocks[0].register_forward_pre_hook(hook(name, axis)))
    handles.append(model.visual.patch_dropout.register_forward_hook(mask_hook))


ENCODE_MEMO_CAPTIONS = 1 << 16  # the proxy has ~2,000 distinct captions; a real corpus gains nothing


def memoize_encode(tokenizer):
    """open_clip's SimpleTokenizer with `encode` (ftfy, cleaning, regex, BPE: caption -> ids)
    remembered per caption string. Every reduction (truncation, syntax, random, block) calls it and
    then cuts the ids, the random ones with fresh draws each call, so outputs are unchanged; only the
    repeated work goes. It was ~16% of the proxy loader's CPU (its ~2,000 distinct captions recur
    over 8,192 samples x epochs), where a real corpus's unique captions gain nothing. Other
    tokenizers are returned as they are."""
    from open_clip.tokenizer import SimpleTokenizer

    if not isinstance(tokenizer, SimpleTokenizer) or getattr(tokenizer.encode, "__cliprepro_memo__", False):
        return tokenizer
    # bounded, as compat's pos_tag memo: a paper-scale corpus of unique captions must not grow it
    cached = functools.lru_cache(maxsize=ENCODE_MEMO_CAPTIONS)(tokenizer.encode)

    def remembered(text: str) -> list[int]:
        return list(cached(text))  # a copy: callers may cut or shuffle what they get

    remembered.__cliprepro_memo__ = True
    remembered.cache_info = cached.cache_info
    tokenizer.encode = remembered
    return tokenizer


def configure(ours: dict[str, str], patch_dropout: float) -> dict:
    """Install our options into open_clip_train's main module (the model and the tokenizer it makes,
    the train loader it iterates); returns what main() leaves behind (the model)."""
    import open_clip
    from open_clip_train import main as oc_main

    from runners.model.masks import install
    from runners.upstream.divergence import DivergenceGuard
    from runners.upstream.steplog import StepLog, TimedLoader

    kind, probe = ours.get("mask-kind"), ours.get("token-probe")
    made: dict = {}
    make = oc_main.create_model_and_transforms

    @functools.wraps(make)
    def create(*args, **kwargs):
        model, preprocess_train, preprocess_val = make(*args, **kwargs)
        if kind and kind != "random":
            install(model, kind, patch_dropout)
        if probe:
            write_first_batch_tokens(model, Path(probe))
        made["model"] = model
        return model, preprocess_train, preprocess_val

    oc_main.create_model_and_transforms = create
    if "step-log" in ours:
        made["step_log"] = log = StepLog(Path(ours["step-log"]))
        get_data = oc_main.get_data

        @functools.wraps(get_data)
        def timed_data(*args, **kwargs):
            data = get_data(*args, **kwargs)
            if "train" in data:
                data["train"].dataloader = TimedLoader(data["train"].dataloader, log)
            return data

        oc_main.get_data = timed_data
    mask = ours.get("text-mask", "truncate")
    if mask not in REDUCTION_MASK:
        raise SystemExit(f"error: --cliprepro-text-mask must be one of {', '.join(REDUCTION_MASK)}")
    if mask == "syntax":
        from runners.upstream.compat import fix_syntax_mask_offline

        fix_syntax_mask_offline()  # never nltk.download: the tagger from NLTK_DATA, or a clear error
    make_tokenizer = (functools.partial(open_clip.get_tokenizer, reduction_mask=REDUCTION_MASK[mask])
                      if REDUCTION_MASK[mask] else open_clip.get_tokenizer)

    @functools.wraps(open_clip.get_tokenizer)
    def get_tokenizer(*args, **kwargs):
        return memoize_encode(make_tokenizer(*args, **kwargs))

    oc_main.get_tokenizer = get_tokenizer
    make_loss = oc_main.create_loss
    max_loss = float(ours["max-loss"]) if "max-loss" in ours else None

    @functools.wraps(make_loss)
    def guarded_loss(*args, **kwargs):
        return DivergenceGuard(make_loss(*args, **kwargs), max_loss)

    oc_main.create_loss = guarded_loss
    fuse_adamw(oc_main)
    if "optimizer-kwargs" in ours:
        _explicit_optimizer(json.loads(ours["optimizer-kwargs"]))
    if "attention" in ours:
        made["attention"] = _attention(oc_main, ours["attention"], probe)
    return made


def fuse_adamw(oc_main) -> None:
    """open_clip_train's AdamW (its default optimizer) with fused=True: torch's one-kernel update
    (CPU and CUDA) instead of the per-tensor loop torch picks for CPU parameters. The same update
    rule, equal up to float rounding (the training-path fingerprint does not move), ~5x faster on
    CPU, where the 49,408 x width token embedding made the optimizer 20-35% of a proxy step."""
    import torch

    optim = types.SimpleNamespace(**vars(torch.optim))  # open_clip_train's `optim`, AdamW fused
    optim.AdamW = functools.partial(torch.optim.AdamW, fused=True)
    oc_main.optim = optim


def _explicit_optimizer(kwargs: dict) -> None:
    """timm's create_optimizer_v2, as open_clip_train calls it for --opt timm/NAME, with `kwargs` too."""
    import timm.optim

    create = timm.optim.create_optimizer_v2

    @functools.wraps(create)
    def explicit(*args, **kw):
        return create(*args, **{**kw, **kwargs})

    timm.optim.create_optimizer_v2 = explicit  # open_clip_train imports it from timm.optim when it runs


def _attention(oc_main, kind: str, probe: str | None):
    """Training epochs under torch's sdpa_kernel; the kernels of the first training step (forward
    and backward, from the profiler) go into the token probe. Returns the kernel context factory."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if kind not in ATTENTION:
        raise SystemExit(f"error: --cliprepro-attention must be one of {', '.join(ATTENTION)}")
    backends = [getattr(SDPBackend, b) for b in ATTENTION[kind]]
    train = oc_main.train_one_epoch
    seen = {"done": probe is None}

    @functools.wraps(train)
    def under_kernel(model, data, loss, epoch, optimizer, *args, **kwargs):
        if not seen["done"]:  # profile the first batch, from its forward to its optimizer step
            seen["done"] = True
            step, profiler = optimizer.step, torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            profiler.__enter__()

            def first_step_profiled(*a, **k):
                optimizer.step = step
                out = step(*a, **k)
                profiler.__exit__(None, None, None)
                kernels = {e.name for e in profiler.events() if "attention" in e.name and e.name.startswith("aten::_")}
                _add_to_probe(Path(probe), {"attention": kind, "sdpa_kernels": sorted(kernels)})
                return out

            optimizer.step = first_step_profiled
        with sdpa_kernel(backends):
            return train(model, data, loss, epoch, optimizer, *args, **kwargs)

    oc_main.train_one_epoch = under_kernel
    return lambda: sdpa_kernel(backends)


def _add_to_probe(path: Path, extra: dict) -> None:
    """Merge `extra` into the token probe's JSON (written by the first batch's hooks, before this)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    _replace_json(path, {**data, **extra})


def _replace_json(path: Path, data: dict) -> None:
    """Write, then rename over `path` (readers never see half a file). Unlike record.atomic_write_text
    no fsync: both writes happen inside the first training step, which is timed."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main(argv: list[str]) -> int:
    from open_clip_train import main as oc_main

    from runners.upstream import compat
    from runners.upstream.divergence import DIVERGED, Diverged
    from runners.model.models import register_repo_configs, uses_syntax_mask

    argv, ours = split_args(argv)
    register_repo_configs()
    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    needs_syntax = ours.get("text-mask") == "syntax" or (bool(model) and uses_syntax_mask(model))
    try:
        compat.apply_all(syntax_mask=needs_syntax)
    except compat.MissingResource as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ratio = float(argv[argv.index("--force-patch-dropout") + 1]) if "--force-patch-dropout" in argv else 0.0
    made = configure(ours, ratio)
    try:
        result = oc_main.main(argv)
    except Diverged as exc:  # the checkpoints before it stay; the caller records an error
        print(f"error: {exc}", file=sys.stderr)
        return DIVERGED
    if result == -1:
        print("error: open_clip_train refused to run: the experiment folder already exists "
              "(use --resume latest or a new --name)", file=sys.stderr)
        return EXISTS
    if "bare-step-s" in ours and "step_log" in made and "model" in made:
        from runners.upstream.steplog import bare_step

        batch = int(argv[argv.index("--batch-size") + 1])
        with made.get("attention", contextlib.nullcontext)():  # the same kernels as the training steps
            made["step_log"].set_bare_step(bare_step(made["model"], batch, float(ours["bare-step-s"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
