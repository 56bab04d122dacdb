"""DICOM images (pydicom): one grayscale frame -> uint8, with the pixel spacing from the header.

How pixel values become the uint8 image the model sees (documented in the README):
1. Modality LUT: stored values * RescaleSlope + RescaleIntercept (when present).
2. VOI: if the header has a window (WindowCenter/WindowWidth, first value when several), the
   DICOM linear window maps [center - width/2, center + width/2] to 0..255 (values outside
   clip). Without a window, values that are already integers in 0..255 (8-bit images) are
   kept as they are, so 8-bit data round-trip losslessly; anything else is stretched
   linearly from the image's own minimum..maximum to 0..255.
3. MONOCHROME1 (white = low values) is inverted after windowing, so bone is bright as in
   MONOCHROME2.
Spacing: PixelSpacing (calibrated to the patient) when present, else ImagerPixelSpacing
(at the detector); which one was used is returned and reported by `distlmk data check`.
Non-square pixels, multi-frame and colour images are refused with an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distlmk.data.dataset import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing")


@dataclass
class DicomImage:
    pixels: np.ndarray  # uint8 [H, W]
    spacing_mm: float | None
    spacing_source: str | None  # "PixelSpacing" | "ImagerPixelSpacing" | None


def is_dicom_file(path: Path) -> bool:
    """By suffix, or by the 'DICM' magic after the 128-byte preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def header_spacing(ds, path: Path) -> tuple[float | None, str | None]:
    for tag in SPACING_TAGS:
        value = ds.get(tag)
        if value is None or len(value) == 0:
            continue
        try:
            row, col = (float(v) for v in (list(value) * 2)[:2])
        except (TypeError, ValueError):
            raise DataError(f"{path}: {tag} {value!r} is not two numbers (mm)") from None
        if row <= 0 or col <= 0:
            raise DataError(f"{path}: {tag} {row:g}\\{col:g} mm must be positive")
        if abs(row - col) > 1e-3 * max(row, col):
            raise DataError(
                f"{path}: non-square pixels ({tag} {row:g} mm between rows, {col:g} mm between "
                "columns) are not supported; resample the image to square pixels"
            )
        return col, tag
    return None, None


def _first(value) -> float:
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def to_uint8(values: np.ndarray, ds) -> np.ndarray:
    """Rescaled pixel values -> uint8 by the header's window, 8-bit passthrough or min-max."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None and _first(width) >= 1:
        c, w = _first(center), _first(width)
        out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0 if w > 1 else (values > c - 0.5) * 255.0
    elif values.min() >= 0 and values.max() <= 255 and np.all(values == np.round(values)):
        out = values
    else:
        lo, hi = float(values.min()), float(values.max())
        out = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def read_dicom(path: Path) -> DicomImage:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - a dependency; named for a broken install
        raise DataError(f"{path}: reading DICOM needs pydicom (pip install pydicom)") from None
    if not path.is_file():
        raise DataError(f"{path}: image file is missing")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a valid DICOM file ({e})") from None
    except Exception as e:  # truncated or corrupt: pydicom raises several types
        raise DataError(f"{path}: unreadable DICOM file, corrupt or truncated ({type(e).__name__}: {e})") from None
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM file has no image (no PixelData); modality {ds.get('Modality', '?')}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(
            f"{path}: multi-frame DICOM ({frames} frames) is not supported; save the frame to annotate "
            "as a single-frame file"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(
            f"{path}: colour DICOM ({photometric}, {samples} samples per pixel) is not supported; "
            "landmarks are detected on grayscale (MONOCHROME1/2) images"
        )
    try:
        arr = ds.pixel_array
    except Exception as e:  # missing decoder for a compressed transfer syntax, truncated pixel data
        raise DataError(
            f"{path}: cannot decode the DICOM pixel data ({type(e).__name__}: {e}); "
            "a compressed file may need an extra decoder package, or the file is truncated"
        ) from None
    if arr.ndim != 2:
        raise DataError(f"{path}: expected one 2-D grayscale frame, got pixel array of shape {arr.shape}")
    values = arr.astype(np.float64)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None or intercept is not None:
        values = values * float(slope if slope is not None else 1.0) + float(intercept or 0.0)
    img = to_uint8(values, ds)
    if photometric == "MONOCHROME1":
        img = 255 - img
    spacing, source = header_spacing(ds, path)
    return DicomImage(img, spacing, source)
