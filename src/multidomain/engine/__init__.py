"""Training and evaluation engine: configs, builders, the training loop, checkpoints, eval."""
