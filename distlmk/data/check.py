"""`distlmk data check`: load a dataset fully (so every error surfaces) and summarise it."""

from __future__ import annotations

from collections import Counter

import numpy as np

from distlmk.data.dataset import LandmarkDataset


def summarize_dataset(ds: LandmarkDataset) -> dict:
    sizes = sorted({img.shape for img in ds.images})
    first = int(ds.splits["train"][0]) if len(ds.splits.get("train", [])) else 0
    return {
        "name": ds.name,
        "num_images": len(ds.images),
        "splits": {s: int(len(idx)) for s, idx in ds.splits.items()},
        "num_landmarks": ds.num_landmarks,
        "landmark_names": list(ds.landmark_names),
        "spacing_mm": sorted({float(s) for s in np.round(ds.spacing_mm, 6)}),
        "spacing_source": dict(Counter(ds.spacing_source)) if ds.spacing_source else None,
        "image_sizes_hw": [list(s) for s in sizes[:5]],
        "first_image": {
            "id": ds.image_ids[first],
            "landmarks_px": np.round(ds.landmarks[first], 3).tolist(),
        },
    }


def format_summary(s: dict) -> str:
    lines = [
        f"dataset: {s['name']}",
        f"images: {s['num_images']} ("
        + ", ".join(f"{k}={v}" for k, v in s["splits"].items())
        + ")",
        f"landmarks: {s['num_landmarks']}: {', '.join(s['landmark_names'])}",
        f"spacing (mm/px): {s['spacing_mm']}"
        + (
            " from " + ", ".join(f"{k} ({v} images)" for k, v in s["spacing_source"].items())
            if s.get("spacing_source")
            else ""
        ),
        f"image sizes (HxW): {s['image_sizes_hw']}",
        f"first image {s['first_image']['id']} landmarks (x, y) in original pixels:",
    ]
    for name, (x, y) in zip(s["landmark_names"], s["first_image"]["landmarks_px"], strict=True):
        lines.append(f"  {name:>26s}: ({x:8.2f}, {y:8.2f})")
    return "\n".join(lines)
