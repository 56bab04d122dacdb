"""Resize to the model's input size, augment with OpenCV, and map predictions back exactly.

Coordinates use pixel centres (cv2's convention for resize and warpAffine), so
input = (orig + 0.5) / scale - 0.5 and orig = (input + 0.5) * scale - 0.5 invert exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from distlmk.config import AugmentConfig
from distlmk.data.dataset import LandmarkDataset


def to_input(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Original pixels -> input pixels; scale [..., 2] is original size / input size per axis."""
    return (points + 0.5) / scale[..., None, :] - 0.5


def to_original(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Input pixels -> original pixels (exact inverse of `to_input`)."""
    return (points + 0.5) * scale[..., None, :] - 0.5


@dataclass
class PreparedSplit:
    """One split resized once to the input size, ready for fast batching."""

    images: np.ndarray  # uint8 [N, h, w]
    points: np.ndarray  # float32 [N, L, 2] input pixels
    orig_points: np.ndarray  # float64 [N, L, 2] original pixels
    scale: np.ndarray  # float64 [N, 2] original/input per axis (sx, sy)
    spacing_mm: np.ndarray  # float64 [N]

    def __len__(self) -> int:
        return len(self.images)


def resize_to_input(
    images: list[np.ndarray], input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [H, W] images of any sizes -> (uint8 [N, h, w] at the input size, scale [N, 2]).

    The one resize of training, evaluation and `distlmk predict`."""
    h, w = input_size
    imgs = np.empty((len(images), h, w), np.uint8)
    scale = np.empty((len(images), 2))
    for j, img in enumerate(images):
        interp = cv2.INTER_AREA if img.shape[0] >= h else cv2.INTER_LINEAR
        imgs[j] = cv2.resize(img, (w, h), interpolation=interp)
        scale[j] = (img.shape[1] / w, img.shape[0] / h)
    return imgs, scale


def prepare_split(ds: LandmarkDataset, split: str, input_size: tuple[int, int]) -> PreparedSplit:
    idx = ds.splits[split]
    imgs, scale = resize_to_input([ds.images[i] for i in idx], input_size)
    orig = ds.landmarks[idx]
    return PreparedSplit(
        imgs, to_input(orig, scale).astype(np.float32), orig, scale, ds.spacing_mm[idx]
    )


class Augmenter:
    """Random affine (rotation, scale, shift about the centre) + intensity jitter + noise."""

    def __init__(self, cfg: AugmentConfig, input_size: tuple[int, int]):
        self.cfg = cfg
        self.h, self.w = input_size

    def random_matrix(self, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        m = cv2.getRotationMatrix2D(
            ((self.w - 1) / 2, (self.h - 1) / 2),
            rng.uniform(-c.rotation_deg, c.rotation_deg),
            1 + rng.uniform(-c.scale, c.scale),
        )
        m[:, 2] += rng.uniform(-c.translate, c.translate, 2) * (self.w, self.h)
        return m

    def __call__(
        self, images: np.ndarray, points: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [B,h,w], [B,L,2] -> float32 [B,h,w] in about [0,1], transformed points."""
        out = np.empty(images.shape, np.float32)
        pts = np.empty_like(points)
        c = self.cfg
        for b in range(len(images)):
            m = self.random_matrix(rng)
            warped = cv2.warpAffine(
                images[b],
                m,
                (self.w, self.h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            pts[b] = points[b] @ m[:, :2].T + m[:, 2]
            gain = 1 + rng.uniform(-c.intensity, c.intensity)
            bias = rng.uniform(-c.intensity, c.intensity) * 0.5
            out[b] = warped.astype(np.float32) * (gain / 255.0) + bias
        if c.noise > 0:
            out += rng.normal(0, c.noise, out.shape).astype(np.float32)
        return out, pts


def iterate_batches(
    split: PreparedSplit,
    batch_size: int,
    rng: np.random.Generator | None = None,
    augmenter: Augmenter | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (images float32 [B,h,w], points [B,L,2], indices); shuffled when rng is given."""
    order = rng.permutation(len(split)) if rng is not None else np.arange(len(split))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        if augmenter is not None and augmenter.cfg.enabled and rng is not None:
            x, p = augmenter(split.images[idx], split.points[idx], rng)
        else:
            x, p = split.images[idx].astype(np.float32) / 255.0, split.points[idx]
        yield x, p, idx
