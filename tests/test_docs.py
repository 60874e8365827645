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


def _user_facing():
    yield REPO / "README.md"
    yield from sorted((REPO / "docs").glob("*.md"))
    yield from sorted((REPO / "suites").glob("*.yaml"))
    yield from sorted((REPO / "expected").glob("*.yaml"))
    yield REPO / "model_configs" / "README.md"


FORBIDDEN = ("../shared", "shared/nltk_data", "/shared/", "/work/", "/root/", "/home/", "/tmp/", "DESIGN.md")


def test_user_facing_docs_stand_alone():
    """A clone has no sibling research notes and no machine of ours: nothing user-facing points there."""
    bad = [(p.relative_to(REPO).as_posix(), word) for p in _user_facing() for word in FORBIDDEN
           if word in p.read_text()]
    assert bad == []


def test_docs_links_resolve():
    import re

    for page in sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
