"""Schemas of an ablation table (rows added one change at a time on one base) and of a linear
probe of image towers; part of a train run's params (runners.schema.train_params.TrainParams)."""
from __future__ import annotations

from pydantic import Field

from cliprepro.spec import Strict


class AblationRow(Strict):
    """One row of an ablation table: a stage that adds one change to the row before it. Each row
    after the first gets its paired zero-shot gain over the row before (gain_<name>, pp) and the
    training step time it saves at equal samples (train_time_saved_pct_<name>: step-only rates,
    data wait excluded, per seed, so a data-bound row is inconclusive)."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    stage: str
    adds: str = Field(description="what this row changes, as the paper's table says it")


class ProbeComparison(Strict):
    """Paired gain of stage `b`'s image tower over stage `a`'s in linear-probe accuracy on the eval
    attributes (runners.training.linprobe): each attribute's eval set split in halves, a logistic
    regression fitted on the first, scored per example on the second. For initialisations before any
    CLIP training (e.g. MIM, a copied teacher, random), where zero-shot accuracy says nothing."""
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    a: str
    b: str
