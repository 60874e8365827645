"""The runner registry and contract: one list of kinds, each module satisfying `Runner`."""
from __future__ import annotations

import inspect

import pytest

import runners


class TestRegistry:
    @pytest.mark.parametrize("kind", runners.RUNNERS)
    def test_module_satisfies_the_contract(self, kind):
        module = runners.get(kind)
        assert isinstance(module, runners.Runner)
        for name in ("plan", "run"):
            want = list(inspect.signature(getattr(runners.Runner, name)).parameters)[1:]  # no self
            sig = inspect.signature(getattr(module, name)).parameters
            got = [p for p, v in sig.items() if v.kind != v.KEYWORD_ONLY]
            assert got == want, (kind, name)
            # more only as optional keywords (runflow's runner_kwargs)
            assert all(v.default is not v.empty for v in sig.values() if v.kind == v.KEYWORD_ONLY), (kind, name)

    @pytest.mark.parametrize("scale", ["proxy", "gpu", "paper"])
    @pytest.mark.parametrize("kind", runners.RUNNERS)
    def test_every_scale_has_a_schema(self, kind, scale):
        assert runners.params_schema(kind, scale).model_fields

    def test_unknown_kind(self):
        with pytest.raises(KeyError, match="known: throughput, architecture, train"):
            runners.get("soup")
