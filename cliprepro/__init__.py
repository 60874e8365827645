"""cliprepro core: suite specs, verdicts, result records and reports (pure; no torch import)."""
__version__ = "0.1.0"
