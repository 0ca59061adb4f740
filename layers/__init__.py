"""Lambda layer builds (python -m layers.build)."""
