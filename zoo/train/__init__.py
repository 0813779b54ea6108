"""Training with Lightning: module, data module, checkpoints, callbacks."""
