"""The in-memory landmark dataset every loader returns, and its validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """A dataset is invalid; the message names the file (and row/line) and what is wrong."""


@dataclass
class LandmarkDataset:
    """Grayscale images at original resolution with landmarks in original pixels (x, y).

    Pixel-centre convention: pixel (i, j) covers [j-0.5, j+0.5] x [i-0.5, i+0.5], so a
    landmark at x=0 lies on the centre of the first column.
    """

    name: str
    images: list[np.ndarray]  # uint8 [H, W] each; sizes may differ
    landmarks: np.ndarray  # float64 [N, L, 2] (x, y) original pixels
    spacing_mm: np.ndarray  # float64 [N] mm per pixel
    landmark_names: list[str]
    image_ids: list[str]
    splits: dict[str, np.ndarray]  # split name -> indices; "train", "val", one or more test splits
    spacing_source: list[str] | None = None  # per image, where its spacing came from (folder format)

    @property
    def num_landmarks(self) -> int:
        return int(self.landmarks.shape[1])

    @property
    def test_splits(self) -> list[str]:
        return [s for s in self.splits if s not in ("train", "val")]


def check_points_inside(points: np.ndarray, shape: tuple[int, int], where: str) -> None:
    """Raise DataError naming `where` if any (x, y) lies outside an image of `shape` (H, W)."""
    h, w = shape
    bad = (
        (points[:, 0] < -0.5)
        | (points[:, 0] > w - 0.5)
        | (points[:, 1] < -0.5)
        | (points[:, 1] > h - 0.5)
    )
    if np.any(bad):
        k = int(np.argmax(bad))
        x, y = points[k]
        raise DataError(
            f"{where}: landmark {k} at (x={x:g}, y={y:g}) lies outside the {w}x{h} image; "
            "check the coordinate order (x along the width) and units (pixels)"
        )


def split_train_val(
    indices: np.ndarray, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically carve a validation split out of the training indices."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(indices)
    n_val = max(1, int(round(len(indices) * val_fraction))) if len(indices) > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
