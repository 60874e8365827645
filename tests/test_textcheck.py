"""Content words kept by open_clip's text masks (runners/training/textcheck.py) and the fairness of
evaluating context-8 text towers (every zero-shot prompt fits in 8 tokens)."""
from __future__ import annotations

import numpy as np
import pytest

from runners.training.proxydata import ATTRIBUTES, TEMPLATES, DataSpec, sample
from runners.training.textcheck import content_words, count_kept, kept_words

SPEC = DataSpec(train_samples=64, eval_samples=60)
EVALS = [sample(SPEC, "eval", i) for i in range(60)]
FILLER = [s for s in EVALS if not s.content_first]
CONTENT = [s for s in EVALS if s.content_first]


def _counts(samples, mask, ctx=8):
    return count_kept([s.caption for s in samples], [s.labels for s in samples], mask, ctx)


class TestContentWords:
    def test_words_of_a_sample(self):
        s = EVALS[0]
        assert all(w in s.caption.split() for w in content_words(s.labels))

    def test_truncation_keeps_none_on_filler_first(self):
        assert _counts(FILLER, "truncate").sum() == 0  # the filler fills all 6 word slots

    def test_syntax_keeps_most_on_filler_first(self):
        assert _counts(FILLER, "syntax").mean() > 3

    def test_syntax_and_truncate_agree_when_nothing_is_cut(self):
        np.testing.assert_array_equal(_counts(CONTENT, "syntax", 32), _counts(CONTENT, "truncate", 32))

    @pytest.mark.parametrize("mask", ["random", "block"])
    def test_random_masks_are_seeded(self, mask):
        caps = [s.caption for s in FILLER]
        assert kept_words(caps, mask, 8) == kept_words(caps, mask, 8)


class TestEvalPromptsFit:
    def test_every_prompt_fits_in_8_tokens(self):
        import open_clip

        tok = open_clip.get_tokenizer("ViT-B-32")
        longest = max(len(tok.encode(t.format(c=c))) + 2 for a, ts in TEMPLATES.items() for t in ts
                      for c in ATTRIBUTES[a])
        assert longest <= 8  # a context-8 text tower sees every zero-shot prompt whole
