"""The one timing recipe (interleaved rounds, timed blocks) and what is timed with it:
the training step, memory per arm, device peaks, and modelled GPU-days."""
