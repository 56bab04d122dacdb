"""Synthetic lateral-cephalogram-like images with 19 landmarks of different ambiguity.

Why: the per-landmark sigma question is only real if landmarks differ. Here some lie on
sharp corners or tips (precise), some on smooth or low-contrast contours (ambiguous along
the contour), and each has its own anisotropic annotation noise (a simulated observer).
Each image draws anatomy-like structures (cranium, sella, orbit, palate, incisors,
mandible, soft-tissue profile) from one template moved by per-structure variation, a
global affine and a smooth elastic warp; the landmarks move with the same maps, so their
true positions are exact. Everything is deterministic per seed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from distlmk.data.dataset import LandmarkDataset

SPACING_MM = 0.75  # mm per pixel at the default 320x256 size (a 240 x 192 mm field)

# name, template (x, y) in [0,1] (x along width), structure group,
# annotation noise (sd along the major axis mm, sd minor mm, major-axis angle deg)
LANDMARKS: list[tuple[str, tuple[float, float], str, tuple[float, float, float]]] = [
    ("sella", (0.36, 0.36), "cranial", (0.6, 0.5, 0)),
    ("nasion", (0.80, 0.30), "cranial", (0.5, 0.4, 90)),
    ("orbitale", (0.70, 0.40), "cranial", (1.8, 0.4, 0)),
    ("porion", (0.22, 0.42), "cranial", (1.6, 0.4, 0)),
    ("subspinale", (0.80, 0.555), "maxilla", (1.8, 0.4, 90)),
    ("supramentale", (0.775, 0.72), "mandible", (1.9, 0.4, 90)),
    ("pogonion", (0.80, 0.80), "mandible", (1.5, 0.4, 90)),
    ("menton", (0.74, 0.87), "mandible", (1.5, 0.4, 0)),
    ("gnathion", (0.785, 0.85), "mandible", (0.9, 0.5, 45)),
    ("gonion", (0.38, 0.76), "mandible", (2.4, 0.6, 45)),
    ("lower_incisal_incision", (0.83, 0.615), "mandible", (0.3, 0.3, 0)),
    ("upper_incisal_incision", (0.845, 0.625), "maxilla", (0.3, 0.3, 0)),
    ("upper_lip", (0.92, 0.60), "soft", (1.1, 0.5, 90)),
    ("lower_lip", (0.91, 0.68), "soft", (1.1, 0.5, 90)),
    ("subnasale", (0.90, 0.53), "soft", (0.8, 0.5, 0)),
    ("soft_tissue_pogonion", (0.88, 0.82), "soft", (2.0, 0.6, 90)),
    ("posterior_nasal_spine", (0.52, 0.54), "maxilla", (1.3, 0.4, 0)),
    ("anterior_nasal_spine", (0.84, 0.52), "maxilla", (0.5, 0.4, 0)),
    ("articulare", (0.34, 0.55), "mandible", (0.9, 0.6, 90)),
]

# mandible outline: condyle, ramus, gonion, lower border, chin, B point, alveolus, then the inner contour
_MANDIBLE = [(0.30, 0.50), (0.34, 0.55), (0.355, 0.66), (0.38, 0.76), (0.55, 0.82), (0.74, 0.87), (0.785, 0.85),
             (0.80, 0.80), (0.775, 0.72), (0.80, 0.67), (0.70, 0.70), (0.50, 0.74), (0.42, 0.66), (0.40, 0.55)]

# structures: (group, kind, points, intensity, thickness px at 256 wide; 0 = filled)
_STRUCTURES: list[tuple[str, str, list[tuple[float, float]], float, float]] = [
    (
        "soft",
        "fill",
        [
            (0.0, 0.0),
            (0.80, 0.0),
            (0.84, 0.18),
            (0.86, 0.29),
            (0.93, 0.38),
            (0.98, 0.46),
            (0.90, 0.53),
            (0.92, 0.60),
            (0.895, 0.645),
            (0.91, 0.68),
            (0.87, 0.74),
            (0.88, 0.82),
            (0.80, 0.92),
            (0.62, 0.97),
            (0.55, 1.0),
            (0.0, 1.0),
        ],
        0.34,
        0,
    ),
    (
        "cranial",
        "smooth",
        [
            (0.80, 0.22),
            (0.70, 0.10),
            (0.45, 0.05),
            (0.20, 0.12),
            (0.07, 0.30),
            (0.10, 0.48),
            (0.20, 0.56),
        ],
        0.75,
        7,
    ),
    ("cranial", "poly", [(0.80, 0.22), (0.80, 0.30), (0.86, 0.38)], 0.7, 4),  # frontal + nasal bone
    (
        "cranial",
        "smooth",
        [(0.32, 0.33), (0.325, 0.355), (0.36, 0.395), (0.395, 0.355), (0.40, 0.33)],
        0.8,
        3,
    ),
    ("cranial", "circle", [(0.70, 0.355), (0.045, 0.0)], 0.55, 2),  # orbit rim
    ("cranial", "circle", [(0.22, 0.445), (0.025, 0.0)], 0.65, 3),  # ear rod ring
    (
        "maxilla",
        "fill",
        [(0.52, 0.54), (0.60, 0.525), (0.75, 0.515), (0.84, 0.52), (0.75, 0.535), (0.60, 0.55)],
        0.7,
        0,
    ),  # palate with sharp spines
    ("maxilla", "smooth", [(0.84, 0.52), (0.80, 0.555), (0.815, 0.59), (0.83, 0.60)], 0.8, 3),
    (
        "maxilla",
        "fill",
        [(0.79, 0.55), (0.81, 0.55), (0.845, 0.625), (0.825, 0.60)],
        0.9,
        0,
    ),  # upper incisor
    (
        "mandible",
        "fill",
        [(0.77, 0.70), (0.79, 0.69), (0.83, 0.615), (0.81, 0.64)],
        0.9,
        0,
    ),  # lower incisor
    (
        "mandible",
        "smoothfill",
        _MANDIBLE,
        0.6,
        0,
    ),
    (
        "mandible",
        "smooth",
        _MANDIBLE[:10],  # the cortex: the outer contour drawn as a bright line
        0.85,
        3,
    ),  # cortex
]


@dataclass(frozen=True)
class SyntheticSpec:
    """What determines a synthetic set: equal specs give byte-identical data."""

    num_images: int = 240
    num_landmarks: int = 19
    seed: int = 0
    size: tuple[int, int] = (320, 256)  # (H, W)
    spacing_mm: float | None = None  # mm per pixel; None: a 240 x 192 mm field (`spacing_for`)
    noise_scale: float = 1.0  # multiplies every landmark's annotation noise (in mm)
    noise_spread: float = 1.0  # exponent on each landmark's noise sd relative to the table's geometric mean

    @property
    def spacing(self) -> float:
        return float(self.spacing_mm) if self.spacing_mm else spacing_for(self.size)

    def key(self) -> str:
        parts = [self.num_images, self.num_landmarks, self.seed, list(self.size), 3]
        if self.spacing_mm or self.noise_scale != 1.0:  # keeps the cache keys of the default sets
            parts += [self.spacing, self.noise_scale]
        if self.noise_spread != 1.0:
            parts += ["spread", self.noise_spread]
        blob = json.dumps(parts).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def spacing_for(size: tuple[int, int]) -> float:
    """mm per pixel: the field of view stays 240 x 192 mm whatever the pixel size."""
    return SPACING_MM * 256.0 / size[1]


def spread_noise(sd: np.ndarray, spread: float) -> np.ndarray:
    """Noise sds [L, 2] (major, minor mm) moved away from (spread > 1) or towards (< 1) their geometric
    mean, per axis: g * (sd / g)^spread. spread 1 returns them unchanged."""
    if spread == 1.0:
        return sd
    if spread <= 0:
        raise ValueError(f"noise spread must be > 0, got {spread}")
    g = np.exp(np.log(sd).mean(axis=0))
    return g * (sd / g) ** spread


def _catmull_rom(points: np.ndarray, samples: int = 8) -> np.ndarray:
    """Smooth curve through control points (open Catmull-Rom spline)."""
    p = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def _landmark_table(
    num_landmarks: int,
) -> list[tuple[str, tuple[float, float], str, tuple[float, float, float]]]:
    """The first L template landmarks; beyond 19, extra points along the mandible/soft profile."""
    table = list(LANDMARKS[:num_landmarks])
    extra = num_landmarks - len(table)
    if extra > 0:
        contour = _catmull_rom(np.array(_MANDIBLE[:10]), 16)
        picks = np.linspace(0, len(contour) - 1, extra + 2)[1:-1].astype(int)
        for j, k in enumerate(picks):
            x, y = contour[k]
            table.append(
                (
                    f"mandible_point_{j}",
                    (float(x), float(y)),
                    "mandible",
                    (1.0 + (j % 3) * 0.5, 0.4, 0),
                )
            )
    return table


class _Warp:
    """Per-image geometry: per-group affine jitter, global affine, smooth elastic field."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]):
        self.h, self.w = size
        self.group = {}
        for g in ("cranial", "maxilla", "mandible", "soft"):
            ang = np.deg2rad(rng.normal(0, 2.0))
            s = 1 + rng.normal(0, 0.03)
            c, si = np.cos(ang) * s, np.sin(ang) * s
            self.group[g] = (np.array([[c, -si], [si, c]]), rng.normal(0, 0.012, 2))
        ang = np.deg2rad(rng.uniform(-7, 7))
        s = rng.uniform(0.92, 1.06)
        c, si = np.cos(ang) * s, np.sin(ang) * s
        self.rot = np.array([[c, -si], [si, c]])
        self.shift = rng.uniform(-0.04, 0.04, 2)
        self.k = rng.normal(0, 1.5, (2, 2)) * 2 * np.pi
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        self.amp = rng.uniform(0.004, 0.012, 2)
        self.angle = np.rad2deg(ang)

    def __call__(self, pts: np.ndarray, group: str) -> np.ndarray:
        """Template points [K, 2] in [0,1] -> image pixels (x, y)."""
        a, t = self.group[group]
        c = np.array([0.5, 0.5])
        p = (pts - c) @ a.T + c + t
        p = (p - c) @ self.rot.T + c + self.shift
        p = p + self.amp * np.sin(p @ self.k.T + self.phase)
        return p * np.array([self.w - 1, self.h - 1])


def _render(rng: np.random.Generator, warp: _Warp, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    sc = w / 256.0
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img = np.full((h, w), 0.08, np.float32) + 0.06 * yy
    shift = 4
    for group, kind, pts, inten, thick in _STRUCTURES:
        inten = float(inten * rng.uniform(0.85, 1.1))
        if kind == "circle":
            (cx, cy), (r, _) = pts
            ang = np.linspace(0, 2 * np.pi, 48)
            ctrl = np.stack([cx + r * np.cos(ang) * 0.8, cy + r * np.sin(ang)], 1)
        elif kind in ("smooth", "smoothfill"):
            ctrl = _catmull_rom(np.array(pts, float))
        else:
            ctrl = np.array(pts, float)
        px = np.round(warp(ctrl, group) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        if kind in ("fill", "smoothfill"):
            cv2.fillPoly(img, [px], inten, lineType=cv2.LINE_AA, shift=shift)
        else:
            closed = kind == "circle"
            cv2.polylines(
                img, [px], closed, inten, max(1, int(round(thick * sc))), cv2.LINE_AA, shift
            )
    # texture: low-frequency anatomy-like variation + trabecular-like fine noise
    low = cv2.resize(
        rng.normal(0, 1, (10, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    img = img * (1 + 0.10 * low) + 0.05 * fine * (img > 0.3)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.4) * sc)
    img = img + rng.normal(0, rng.uniform(0.01, 0.035), (h, w)).astype(np.float32)
    gamma = rng.uniform(0.8, 1.25)
    img = np.clip(img, 0, 1) ** gamma * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def generate(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Return images uint8 [N,H,W], annotated landmarks [N,L,2], true landmarks [N,L,2], names."""
    table = _landmark_table(spec.num_landmarks)
    names = [t[0] for t in table]
    tmpl = np.array([t[1] for t in table])
    groups = [t[2] for t in table]
    noise = np.array([t[3] for t in table])
    noise[:, :2] = spread_noise(noise[:, :2], spec.noise_spread) * spec.noise_scale
    h, w = spec.size
    spacing = spec.spacing
    images = np.empty((spec.num_images, h, w), np.uint8)
    true = np.empty((spec.num_images, len(table), 2))
    annotated = np.empty_like(true)
    for i in range(spec.num_images):
        rng = np.random.default_rng([spec.seed, i])
        warp = _Warp(rng, spec.size)
        images[i] = _render(rng, warp, spec.size)
        for k, g in enumerate(groups):
            true[i, k] = warp(tmpl[k : k + 1], g)[0]
        major, minor, ang = noise[:, 0], noise[:, 1], np.deg2rad(noise[:, 2] + warp.angle)
        u, v = rng.normal(0, 1, (2, len(table)))
        d = np.stack(
            [
                u * major * np.cos(ang) - v * minor * np.sin(ang),
                u * major * np.sin(ang) + v * minor * np.cos(ang),
            ],
            1,
        )
        annotated[i] = true[i] + d / spacing
    return images, annotated, true, names


def _cache_dir(root: str | None) -> Path:
    if root:
        return Path(root).expanduser().resolve()
    return Path(os.environ.get("DISTLMK_CACHE", Path.home() / ".cache" / "distlmk")).resolve()


def load_or_generate(
    spec: SyntheticSpec, cache_root: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(images, annotated, true landmarks, names) from the on-disk cache when present
    (written atomically), else generated."""
    path = _cache_dir(cache_root) / f"synthetic_{spec.key()}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return z["images"], z["landmarks"], z["true"], [str(n) for n in z["names"]]
        except (OSError, ValueError, KeyError):
            pass  # a damaged (or older, truth-less) cache is regenerated below
    images, annotated, true, names = generate(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, images=images, landmarks=annotated, true=true, names=np.array(names))
    os.replace(tmp, path)
    return images, annotated, true, names


def synthetic_dataset(
    num_train: int,
    num_val: int,
    num_test: int,
    num_landmarks: int = 19,
    seed: int = 0,
    size: tuple[int, int] = (320, 256),
    cache_root: str | None = None,
    spacing_mm: float | None = None,
    noise_scale: float = 1.0,
    eval_truth: bool = False,
    noise_spread: float = 1.0,
) -> LandmarkDataset:
    """Train/val/test splits of one generated set. Labels are one simulated observer's
    annotations; with `eval_truth` the validation and test labels are the exact positions
    (a consensus of many observers), so evaluation measures the model, not one observer."""
    n = num_train + num_val + num_test
    spec = SyntheticSpec(n, num_landmarks, seed, tuple(size), spacing_mm, noise_scale, noise_spread)
    images, landmarks, true, names = load_or_generate(spec, cache_root)
    if eval_truth:
        landmarks = landmarks.copy()
        landmarks[num_train:] = true[num_train:]
    idx = np.arange(n)
    spacing = spec.spacing
    return LandmarkDataset(
        name=f"synthetic(seed={seed})",
        images=list(images),
        landmarks=landmarks.astype(np.float64),
        spacing_mm=np.full(n, spacing),
        landmark_names=names,
        image_ids=[f"{i:04d}" for i in idx],
        splits={
            "train": idx[:num_train],
            "val": idx[num_train : num_train + num_val],
            "test": idx[num_train + num_val :],
        },
    )
