"""ISBI 2015 cephalometric challenge loader (Wang et al. 2016), exact published layout.

RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp and AnnotationsByMD/400_{senior,junior}/NNN.txt
(the annotation folders may also sit at the top level). Each .txt has 19 `x,y` lines in
pixels followed by 8 facial-type lines that are not landmarks. Spacing 0.1 mm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distlmk.data.dataset import DataError, LandmarkDataset, check_points_inside, split_train_val
from distlmk.data.io import read_gray

SPACING_MM = 0.1
NUM_LANDMARKS = 19
LANDMARK_NAMES = [
    "sella",
    "nasion",
    "orbitale",
    "porion",
    "subspinale",
    "supramentale",
    "pogonion",
    "menton",
    "gnathion",
    "gonion",
    "lower_incisal_incision",
    "upper_incisal_incision",
    "upper_lip",
    "lower_lip",
    "subnasale",
    "soft_tissue_pogonion",
    "posterior_nasal_spine",
    "anterior_nasal_spine",
    "articulare",
]
SPLITS = {"train": "TrainingData", "Test1": "Test1Data", "Test2": "Test2Data"}


def read_annotation(path: Path) -> np.ndarray:
    """The 19 landmark lines of one annotation file as float [19, 2] (x, y)."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file is missing")
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    pts = []
    for i, line in enumerate(lines[:NUM_LANDMARKS]):
        parts = line.replace(";", ",").split(",")
        try:
            x, y = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise DataError(f"{path}:{i + 1}: expected 'x,y' in pixels, got {line!r}") from None
        pts.append((x, y))
    if len(pts) < NUM_LANDMARKS:
        raise DataError(
            f"{path}: {len(pts)} landmark lines, expected {NUM_LANDMARKS} 'x,y' lines "
            "(file truncated?)"
        )
    return np.array(pts, np.float64)


def _annotation_dir(root: Path, who: str) -> Path:
    for cand in (root / "AnnotationsByMD" / f"400_{who}", root / f"400_{who}"):
        if cand.is_dir():
            return cand
    raise DataError(
        f"{root}: no 400_{who} annotation folder (looked in AnnotationsByMD/400_{who} and 400_{who})"
    )


def load_isbi2015(
    root: str | Path, ground_truth: str = "mean", val_fraction: float = 0.15
) -> LandmarkDataset:
    root = Path(root)
    if not (root / "RawImage").is_dir():
        raise DataError(f"{root}: no RawImage folder; point --root at the ISBI 2015 dataset folder")
    who = ["senior", "junior"] if ground_truth == "mean" else [ground_truth]
    ann_dirs = [_annotation_dir(root, w) for w in who]
    images, landmarks, ids, splits = [], [], [], {}
    for split, folder in SPLITS.items():
        files = sorted((root / "RawImage" / folder).glob("*.bmp"))
        idx = []
        for f in files:
            img = read_gray(f)
            pts = np.mean([read_annotation(d / f"{f.stem}.txt") for d in ann_dirs], axis=0)
            check_points_inside(pts, img.shape, str(ann_dirs[0] / f"{f.stem}.txt"))
            idx.append(len(images))
            images.append(img)
            landmarks.append(pts)
            ids.append(f.stem)
        if idx:
            splits[split] = np.array(idx)
    if "train" not in splits:
        raise DataError(f"{root / 'RawImage' / 'TrainingData'}: no .bmp training images")
    splits["train"], splits["val"] = split_train_val(splits["train"], val_fraction)
    return LandmarkDataset(
        name=f"isbi2015({ground_truth})",
        images=images,
        landmarks=np.stack(landmarks),
        spacing_mm=np.full(len(images), SPACING_MM),
        landmark_names=list(LANDMARK_NAMES),
        image_ids=ids,
        splits=splits,
    )
