"""Incremental runs: what a run's outputs depend on, and which steps a run may skip because of it."""
