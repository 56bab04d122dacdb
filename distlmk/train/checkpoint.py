"""Atomic trainer checkpoints (torch.save to a temp file, then rename)."""

from __future__ import annotations

from pathlib import Path

import torch

from distlmk.atomic import atomic_write


def save_checkpoint(state: dict, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no checkpoint to resume from; run without --resume to start fresh"
        )
    return torch.load(path, map_location="cpu", weights_only=False)
