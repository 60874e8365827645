"""What goes into and comes out of a runner: parameter schemas, the names of the metrics
it writes, the model and augmentation names it accepts, and its Output (pure: no torch)."""
