"""Errors a trainer raises (kept apart so the simulated trainer needs no torch model imports)."""


class NonFiniteLossError(RuntimeError):
    """Training diverged (NaN/inf loss); the message says at which epoch and what to change."""
