"""Image reading with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from distlmk.data.dataset import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_gray(path: Path) -> np.ndarray:
    """Read an image as uint8 grayscale (3 identical channels collapse to one)."""
    if not path.is_file():
        raise DataError(f"{path}: image file is missing")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DataError(
            f"{path}: unreadable image (corrupt or unsupported format); re-export it as PNG"
        )
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img
