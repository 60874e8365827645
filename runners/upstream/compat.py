"""Every fix for an upstream bug, in one place (docs/traps.md). Each has a test in tests/test_compat.py
that fails when the bug is gone (so the fix can go) or back (so the fix is still needed).

- open_clip_train + webdataset >= 0.2.96: `tar_file_expander` yields an end-of-shard marker that
  open_clip_train's `group_by_keys_nothrow` chokes on (KeyError 'fname'; open_clip #935).
- open_clip's syntax reduction mask with NLTK >= 3.9: it downloads pre-3.9 resources and needs
  `punkt_tab` (not available offline). We skip the download and tokenize words with NLTK's
  Treebank tokenizer (needs no data); the POS tagger comes from NLTK_DATA, and a clear error says
  how to install it when it is missing. Never `nltk.download`.
- open_clip_train wraps DDP with device_ids=[device] on a CPU too, which torch refuses: torchrun on
  CPUs (gloo) failed before the first step. A CPU device passes none.
- open_clip_train saves checkpoints with a plain torch.save: a run killed mid-save leaves a
  truncated epoch_N.pt that `--resume latest` then fails to load. Saves to a path go through a
  temp file and os.replace in the trainer's process (runners.upstream.openclip_main).
- open_clip_train's sample shuffle is `wds.shuffle(bufsize, initial)` with no seed, and webdataset
  then seeds it from pid + time: the same --seed trains different weights every run (found when CI
  and a local run of one cached stage disagreed by 7 pp). It becomes open_clip_train's own
  `detshuffle2` keyed by the DataLoader worker's seed and the epoch (torch derives the worker seed
  from --seed): two fresh trainings of a stage give the same weights (a slow test checks this).
- clip_benchmark with numpy >= 2.4: `accuracy` calls float() on a 1-element array (issue #147).
  Patched at the one expression, from upstream's own source, so its metric stays its own.
"""
from __future__ import annotations

import functools
import inspect
import os
import textwrap
from types import ModuleType

NLTK_TAGGER = "taggers/averaged_perceptron_tagger_eng"
NLTK_INSTALL = "python -m nltk.downloader averaged_perceptron_tagger_eng"
NLTK_HELP = ("NLTK's English POS tagger is missing (resource 'averaged_perceptron_tagger_eng', NLTK >= 3.9). "
             f"Install it once with: {NLTK_INSTALL} (or point NLTK_DATA at a folder that has "
             "taggers/averaged_perceptron_tagger_eng/)")


class MissingResource(RuntimeError):
    """A data file the product needs and must not download by itself."""


def patch_source(module: ModuleType, name: str, old: str, new: str) -> None:
    """Replace `old` by `new` in the source of module.name and re-define it in the module.

    Raises if `old` is not in the source: upstream changed, so the fix must be looked at again.
    """
    func = getattr(module, name)
    if getattr(func, "__cliprepro_patched__", False):
        return
    src = textwrap.dedent(inspect.getsource(func))
    if old not in src:
        raise RuntimeError(f"compat: {module.__name__}.{name} no longer contains {old!r}; re-check the fix")
    namespace: dict = {}
    exec(compile(src.replace(old, new), inspect.getsourcefile(func) or name, "exec"), module.__dict__, namespace)
    patched = namespace[name]
    patched.__cliprepro_patched__ = True
    setattr(module, name, patched)


def fix_clip_benchmark_accuracy() -> None:
    from clip_benchmark.metrics import zeroshot_classification as zc

    patch_source(zc, "accuracy", ".sum(0, keepdim=True).cpu().numpy())", ".sum(0).cpu().item())")


def _no_bar(iterable, *args, **kwargs):
    return iterable


def quiet_clip_benchmark_bars() -> None:
    """clip_benchmark draws an unlabelled tqdm bar per class list and per loader; cliprepro.progress
    draws one labelled unit per evaluation instead."""
    from clip_benchmark.metrics import zeroshot_classification as zc
    from clip_benchmark.metrics import zeroshot_retrieval as zr

    zc.tqdm = zr.tqdm = _no_bar


def fix_webdataset_eof() -> None:
    import open_clip_train.data as ocd
    from webdataset.tariterators import tar_file_expander

    if getattr(ocd.tar_file_expander, "func", None) is tar_file_expander:
        return
    ocd.tar_file_expander = functools.partial(tar_file_expander, eof_value=None)


def seeded_sample_shuffle() -> None:
    import open_clip_train.data as ocd

    patch_source(ocd, "get_wds_dataset", "wds.shuffle(\n", "detshuffle2(seed=-1, epoch=shared_epoch,\n")


def ddp_on_cpu() -> None:
    """open_clip_train wraps the model in DDP with device_ids=[device] on a CPU too, which torch
    refuses ('device_ids ... only work with ... GPU modules'): torchrun on CPUs (gloo) passes none.
    Only the distributed branch changes; one process trains as before."""
    import open_clip_train.main as ocm

    patch_source(ocm, "main", "device_ids=[device]", "device_ids=[device] if device.type == 'cuda' else None")


def atomic_checkpoint_saves() -> None:
    """torch.save(obj, path) writes path.tmp, then renames it: a checkpoint is whole or absent."""
    import torch

    if getattr(torch.save, "__cliprepro_atomic__", False):
        return
    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        tmp = f"{os.fspath(f)}.tmp"
        try:
            original(obj, tmp, *args, **kwargs)
            os.replace(tmp, f)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    save.__cliprepro_atomic__ = True
    torch.save = save


def require_nltk_tagger() -> None:
    """Raise MissingResource (with how to install it) unless the tagger is on NLTK's path."""
    import nltk

    extra = os.environ.get("NLTK_DATA")
    if extra:
        for path in extra.split(os.pathsep):
            if path not in nltk.data.path:
                nltk.data.path.insert(0, path)
    try:
        nltk.data.find(NLTK_TAGGER)
    except LookupError:
        raise MissingResource(NLTK_HELP) from None


def fix_syntax_mask_offline() -> None:
    """open_clip's syntax mask without downloads: Treebank word tokenizer, tagger from NLTK_DATA."""
    import nltk
    import open_clip.tokenizer as tok
    from nltk.tokenize import TreebankWordTokenizer

    require_nltk_tagger()
    tok._nltk_init = True  # skips nltk.download('punkt') / ('averaged_perceptron_tagger')
    nltk.tokenize.word_tokenize = TreebankWordTokenizer().tokenize  # punkt_tab is not needed
    if not hasattr(nltk.pos_tag, "cache_info"):  # POS tagging runs ~2,500 captions/s: once per caption
        nltk.pos_tag = _memoized_pos_tag(nltk.pos_tag)


def _memoized_pos_tag(pos_tag):
    @functools.lru_cache(maxsize=200_000)
    def tag(tokens: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return tuple(pos_tag(list(tokens)))

    def cached(tokens, *args, **kwargs):
        if args or kwargs:
            return pos_tag(tokens, *args, **kwargs)
        return list(tag(tuple(tokens)))

    cached.cache_info = tag.cache_info
    return cached


def apply_all(*, syntax_mask: bool = False) -> None:
    """Every fix the train and zero-shot paths need; syntax_mask also checks the NLTK tagger."""
    fix_webdataset_eof()
    seeded_sample_shuffle()
    ddp_on_cpu()
    atomic_checkpoint_saves()
    fix_clip_benchmark_accuracy()
    if syntax_mask:
        fix_syntax_mask_offline()
