"""docs/claims.md is generated from suites/ and expected/: the committed file must be current."""
from __future__ import annotations

from cliprepro.claimsdoc import render
from cliprepro.layout import Layout
from tests.conftest import REPO


def test_claims_reference_is_current():
    layout = Layout.find(str(REPO))
    suites = {n: layout.load(n)[0] for n in layout.suite_names()}
    expected = {n: layout.load(n)[1] for n in layout.suite_names()}
    assert (REPO / "docs" / "claims.md").read_text() == render(suites, expected), (
        "docs/claims.md is stale: run `bin/cliprepro docs`")


def test_every_entry_is_listed():
    text = (REPO / "docs" / "claims.md").read_text()
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        for e in layout.load(name)[1].entries:
            assert f"`{e.claim}`" in text
