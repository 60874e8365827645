"""Helpers of the train runner: the paper-scale recipe, the procedural proxy data, paired
contrasts between stages, and the content-word text check."""
