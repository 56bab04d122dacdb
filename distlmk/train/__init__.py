"""Training: the network trainer, the epoch loop every trainer shares (base.py), losses, metrics, checkpoints."""
