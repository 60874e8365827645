"""Every gate's negative control, run for real: the gate must come out not_reproduced (slow)."""
from __future__ import annotations

import pytest

from cliprepro.layout import Layout
from cliprepro.runflow import execute
from tests.conftest import REPO


def _controls():
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        suite, _ = layout.load(name)
        for control in suite.negative_controls:
            yield name, control, suite.ci_scale


@pytest.mark.slow
@pytest.mark.parametrize("suite,control,scale", list(_controls()))
def test_negative_control_fails_its_gates(suite, control, scale, tmp_path):
    outcome = execute(Layout.find(str(REPO)), suite, scale=scale, control=control, out=tmp_path)
    assert outcome.record.results, "a control with no gates judged proves nothing"
    assert {r.verdict for r in outcome.record.results} == {"not_reproduced"}, [
        (r.claim, r.verdict, r.reason) for r in outcome.record.results]
    gates = {e.claim for e in outcome.record.expected if e.role == "gate"}
    assert gates == set(suite_gates(suite, control))


def suite_gates(suite: str, control: str) -> list[str]:
    return Layout.find(str(REPO)).load(suite)[0].gates_of(control)
