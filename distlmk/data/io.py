"""Image reading with errors that name the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from distlmk.data.dataset import DataError
from distlmk.data.dicom import DICOM_SUFFIXES, is_dicom_file, read_dicom

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES)


@dataclass
class ImageFile:
    pixels: np.ndarray  # uint8 [H, W]
    spacing_mm: float | None  # from the file's header (DICOM); None for PNG/JPEG/BMP/TIFF
    spacing_source: str | None  # the header field it came from


def read_image(path: Path) -> ImageFile:
    """Any supported image (DICOM by suffix or by its magic bytes) with its header spacing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file is missing")
    if is_dicom_file(path):
        d = read_dicom(path)
        return ImageFile(d.pixels, d.spacing_mm, d.spacing_source)
    return ImageFile(_read_raster(path), None, None)


def read_gray(path: Path) -> np.ndarray:
    """Read an image as uint8 grayscale (3 identical channels collapse to one)."""
    return read_image(path).pixels


def _read_raster(path: Path) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF as uint8 grayscale (OpenCV)."""
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
