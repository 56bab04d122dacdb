"""Atomic trainer checkpoints (written to a temp file, then renamed).

A state holding torch tensors (a network's) is saved with torch.save; a state of plain Python and
numpy values (a simulated trainer's) with pickle, so a simulated trial never imports torch (seconds
per trial process). `load_checkpoint` reads both: torch's format is a zip archive.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from distlmk.atomic import atomic_write

_ZIP_MAGIC = b"PK\x03\x04"


def _holds_tensors(value) -> bool:
    if type(value).__module__.startswith("torch"):
        return True
    if isinstance(value, dict):
        return any(_holds_tensors(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensors(v) for v in value)
    return False


def save_checkpoint(state: dict, path: str | Path) -> Path:
    if _holds_tensors(state):
        import torch

        return atomic_write(path, lambda tmp: torch.save(state, tmp))

    def dump(tmp) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)

    return atomic_write(path, dump)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no checkpoint to resume from; run without --resume to start fresh"
        )
    with path.open("rb") as fh:
        if fh.read(4) != _ZIP_MAGIC:
            fh.seek(0)
            return pickle.load(fh)
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)
