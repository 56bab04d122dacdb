"""Landmark metrics in millimetres: MRE and SDR, per landmark, in original image pixels."""

from __future__ import annotations

import numpy as np

from distlmk.schema import SDR_THRESHOLDS_MM


def radial_errors_mm(pred: np.ndarray, gt: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """pred, gt [N, L, 2] original pixels; spacing [N] mm/px -> radial errors [N, L] in mm."""
    return np.linalg.norm(pred - gt, axis=-1) * np.asarray(spacing_mm)[:, None]


def summarize(errors_mm: np.ndarray) -> dict:
    """MRE, SDR (percent within 2/2.5/3/4 mm) and per-landmark MRE from errors [N, L]."""
    return {
        "mre_mm": float(errors_mm.mean()),
        "sdr": {f"{t:.1f}": float(100.0 * (errors_mm <= t).mean()) for t in SDR_THRESHOLDS_MM},
        "per_landmark_mre_mm": errors_mm.mean(axis=0).tolist(),
    }


def mean_position_baseline(
    train_points: np.ndarray,
    train_sizes: np.ndarray,
    test_points: np.ndarray,
    test_sizes: np.ndarray,
    test_spacing: np.ndarray,
) -> float:
    """MRE (mm) of always predicting each landmark's mean training position.

    Positions are averaged as fractions of the image size, so sets with mixed image sizes work.
    sizes are [N, 2] (W, H) in pixels.
    """
    mean_rel = (train_points / train_sizes[:, None, :]).mean(axis=0)
    pred = mean_rel[None] * test_sizes[:, None, :]
    return float(radial_errors_mm(pred, test_points, test_spacing).mean())
