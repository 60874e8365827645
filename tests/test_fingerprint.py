"""The training path's fingerprint (runners.training.fingerprint): what training does, not where
its code lives."""
from __future__ import annotations

import pytest

from runners.training import fingerprint


class TestOfLosses:
    @pytest.mark.parametrize("a,b,same", [
        ([4.1581, 4.0102], [4.1581, 4.0102], True),
        ([4.1581, 4.0102], [4.15812, 4.01018], True),  # last-bit arithmetic differences: same
        ([4.1581, 4.0102], [4.1581, 4.0202], False),  # training changed: another fingerprint
        ([4.1581, 4.0102], [4.1581], False),
    ])
    def test_rounded_losses(self, a, b, same):
        assert (fingerprint.of_losses(a) == fingerprint.of_losses(b)) is same

    def test_the_trainer_log_is_parsed(self):
        line = ("2026-11-30,05:47:43 | INFO | Train Epoch: 0 [ 128/8192 (2%)] Data (t): 0.275 Batch (t): "
                "0.699, 183.057/s, 183.057/s/gpu LR: 0.000100 Logit Scale: 20.559 Contrastive_loss: "
                "9.5631 (9.5631) Loss: 9.5631 (9.5631)")
        assert fingerprint._LOSS.findall(line) == ["9.5631"]


@pytest.mark.slow
def test_the_committed_fingerprint_is_this_code(monkeypatch):
    """Recomputed by a fresh reference training: a change that alters training fails here until
    COMMITTED is re-made (and every training suite recalibrated)."""
    value, losses = fingerprint.compute()
    assert len(losses) == 8
    assert value == fingerprint.COMMITTED, (
        f"training path fingerprint {value} != committed {fingerprint.COMMITTED} (losses {losses})")


@pytest.mark.slow
def test_a_change_to_training_changes_the_fingerprint(monkeypatch):
    """Negative control: the reference trained at another learning rate is another path."""
    from runners.training import stage

    original = stage.stage_argv
    monkeypatch.setattr(stage, "stage_argv", lambda *a, **k: [*original(*a, **k), "--lr", "0.01"])
    value, _ = fingerprint.compute()
    assert value != fingerprint.COMMITTED
