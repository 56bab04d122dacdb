"""Training: the shared trainer, losses, metrics, checkpoints."""
