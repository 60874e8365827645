"""The upstream code paths: the one entry point to open_clip_train and every compatibility
fix for an upstream bug (each with a test that fails when the bug is gone or back)."""
