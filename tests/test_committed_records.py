"""Every committed record, re-judged by today's claim kinds and interval rule: the same verdict as
stored, or a change listed here with its reason (docs/verdicts.md, schema 2)."""
from __future__ import annotations

import pytest

from cliprepro import record as rec
from cliprepro.verdict import judge
from tests.conftest import REPO

# (record id, claim) -> (stored, today): a committed record whose verdict today's rules change, with
# the reason. None today (the nine schema-1 findings of clipa_strategies' first calibration runs
# left with those records, re-made on the training-path fingerprint); the mechanism stays.
CHANGED: dict[tuple[str, str], tuple[str, str]] = {}


def _judged():
    out = {}
    for path in rec.find(REPO / "results"):
        rid, record = rec.read(path)
        entries = {e.key(): e for e in record.expected}
        for r in record.results:
            if r.verdict in ("error", "skipped"):
                continue  # nothing was measured to re-judge
            entry = entries[(r.claim, r.scale)]
            today, _ = judge(entry, record.metrics[entry.metric].measured())
            out[(rid, r.claim)] = (r.verdict, today)
    return out


JUDGED = _judged()


class TestCommittedRecords:
    def test_there_are_records_to_rejudge(self):
        assert len(JUDGED) >= 30

    @pytest.mark.parametrize("key", sorted(JUDGED))
    def test_same_verdict_or_an_explained_change(self, key):
        stored, today = JUDGED[key]
        assert (stored, today) == CHANGED.get(key, (stored, stored)), key

    def test_every_listed_change_still_happens(self):
        assert {k: JUDGED.get(k) for k in CHANGED} == CHANGED
