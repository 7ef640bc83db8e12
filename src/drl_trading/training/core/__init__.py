"""Training core: environment, splits, the training run and its gate, behind the trainer, revision
and report ports (no adapter, no torch)."""
