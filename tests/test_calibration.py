"""Calibration: expected/ is recomputed from the committed calibration records it cites."""
from __future__ import annotations

import pytest

from cliprepro.calibration import expected_from_records, load_calibration, runs_needed
from cliprepro.layout import Layout
from tests.conftest import REPO


def _gate_entries():
    layout = Layout.find(str(REPO))
    for name in layout.suite_names():
        for entry in layout.load(name)[1].entries:
            if entry.kind == "calibrated_effect":
                yield name, entry


class TestCommittedCalibration:
    @pytest.mark.parametrize("suite,entry", list(_gate_entries()), ids=lambda x: getattr(x, "claim", x))
    def test_expected_recomputed_from_its_records(self, suite, entry):
        assert entry.calibration, f"{entry.claim} is not calibrated"
        records = load_calibration(Layout.find(str(REPO)))
        for rid in entry.calibration:
            assert records[rid].record_type == "calibration" and records[rid].suite == suite
        cal = expected_from_records(entry, records)
        assert (cal.value, cal.spread, cal.halfwidth) == (
            entry.value, entry.calibration_spread, entry.planned_halfwidth)


@pytest.mark.parametrize("runtime_s,runs", [(10, 5), (59.9, 5), (60, 3), (600, 3)])
def test_runs_needed(runtime_s, runs):
    assert runs_needed(runtime_s) == runs
