"""Generic folder format: images/ + landmarks.csv (image,landmark,x,y) + optional meta.yaml.

Images may be PNG/JPEG/BMP/TIFF or DICOM (.dcm). Spacing: a DICOM header's
PixelSpacing/ImagerPixelSpacing; meta.yaml's spacing_mm for the files without one (and,
when both are given, they must agree: the error says so); 1.0 mm/px for non-DICOM images
without spacing_mm. A DICOM without spacing and no spacing_mm is an error naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from distlmk.data.dataset import DataError, LandmarkDataset, check_points_inside, split_train_val
from distlmk.data.dicom import DICOM_SUFFIXES
from distlmk.data.io import IMAGE_SUFFIXES, ImageFile, read_image

META_KEYS = {"spacing_mm", "landmark_names", "splits"}


def read_meta(root: Path) -> dict:
    path = root / "meta.yaml"
    if not path.is_file():
        return {}
    try:
        meta = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: must be a mapping with keys {sorted(META_KEYS)}")
    unknown = set(meta) - META_KEYS
    if unknown:
        raise DataError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(META_KEYS)}")
    if "spacing_mm" in meta and not isinstance(meta["spacing_mm"], int | float):
        raise DataError(f"{path}: spacing_mm must be a number (mm per pixel)")
    return meta


def read_landmarks_csv(path: Path) -> dict[str, dict[int, tuple[float, float, int]]]:
    """image -> landmark index -> (x, y, csv line). Errors name the line."""
    if not path.is_file():
        raise DataError(f"{path}: landmarks.csv is missing (columns: image,landmark,x,y)")
    table: dict[str, dict[int, tuple[float, float, int]]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"image", "landmark", "x", "y"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise DataError(
                f"{path}:1: header must have columns image,landmark,x,y; got {reader.fieldnames}"
            )
        for row in reader:
            line = reader.line_num
            try:
                k, x, y = int(row["landmark"]), float(row["x"]), float(row["y"])
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}:{line}: landmark must be an integer and x,y numbers; got {row}"
                ) from None
            if k < 0:
                raise DataError(f"{path}:{line}: landmark index must be >= 0, got {k}")
            per = table.setdefault(row["image"], {})
            if k in per:
                raise DataError(
                    f"{path}:{line}: landmark {k} of {row['image']} given twice (first at line {per[k][2]})"
                )
            per[k] = (x, y, line)
    if not table:
        raise DataError(f"{path}: no landmark rows")
    return table


def load_folder(root: str | Path, val_fraction: float = 0.15) -> LandmarkDataset:
    root = Path(root)
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: missing images/ folder (expected images/ + landmarks.csv)")
    meta = read_meta(root)
    csv_path = root / "landmarks.csv"
    table = read_landmarks_csv(csv_path)
    num_l = max(max(per) for per in table.values()) + 1
    images, landmarks, ids, spacings, sources = [], [], [], [], []
    meta_spacing = float(meta["spacing_mm"]) if "spacing_mm" in meta else None
    files = {p.name: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    for name in sorted(table):
        per = table[name]
        first_line = min(v[2] for v in per.values())
        if name not in files:
            raise DataError(f"{csv_path}:{first_line}: image {name!r} not found in {img_dir}")
        missing = sorted(set(range(num_l)) - set(per))
        if missing:
            raise DataError(
                f"{csv_path}:{first_line}: image {name!r} has {len(per)} landmarks, expected {num_l} "
                f"(missing landmark(s) {missing})"
            )
        loaded = read_image(files[name])
        img = loaded.pixels
        spacings.append(_spacing(loaded, meta_spacing, files[name], root))
        sources.append(loaded.spacing_source or ("meta.yaml" if meta_spacing is not None else "default 1.0"))
        pts = np.array([per[k][:2] for k in range(num_l)], np.float64)
        for k in range(num_l):
            check_points_inside(
                pts[k : k + 1], img.shape, f"{csv_path}:{per[k][2]} ({name}, landmark {k})"
            )
        images.append(img)
        landmarks.append(pts)
        ids.append(name)
    names = meta.get("landmark_names") or [f"landmark_{k}" for k in range(num_l)]
    if len(names) != num_l:
        raise DataError(
            f"{root / 'meta.yaml'}: landmark_names has {len(names)} names, landmarks.csv has {num_l} landmarks"
        )
    splits = _splits(meta.get("splits"), ids, root, val_fraction)
    return LandmarkDataset(
        name=f"folder({root.name})",
        images=images,
        landmarks=np.stack(landmarks),
        spacing_mm=np.array(spacings, np.float64),
        landmark_names=[str(n) for n in names],
        image_ids=ids,
        splits=splits,
        spacing_source=sources,
    )


def _spacing(loaded: ImageFile, meta_spacing: float | None, path: Path, root: Path) -> float:
    """One image's mm per pixel: the DICOM header's, which meta.yaml must agree with when both are given."""
    if loaded.spacing_mm is None:
        if meta_spacing is not None:
            return meta_spacing
        if path.suffix.lower() in DICOM_SUFFIXES:
            raise DataError(
                f"{path}: DICOM without PixelSpacing or ImagerPixelSpacing; add spacing_mm to "
                f"{root / 'meta.yaml'} (it is then used for the files without one)"
            )
        return 1.0
    if meta_spacing is not None and abs(loaded.spacing_mm - meta_spacing) > 1e-3 * meta_spacing:
        raise DataError(
            f"{path}: header {loaded.spacing_source} {loaded.spacing_mm:g} mm disagrees with spacing_mm "
            f"{meta_spacing:g} in {root / 'meta.yaml'}; the header wins when meta.yaml has no spacing_mm, "
            "so remove spacing_mm from meta.yaml (or correct it)"
        )
    return loaded.spacing_mm


def _splits(
    spec: dict | None, ids: list[str], root: Path, val_fraction: float
) -> dict[str, np.ndarray]:
    pos = {name: i for i, name in enumerate(ids)}
    if not spec:
        n_test = max(1, len(ids) // 5)
        rest, test = np.arange(len(ids) - n_test), np.arange(len(ids) - n_test, len(ids))
        train, val = split_train_val(rest, val_fraction)
        return {"train": train, "val": val, "test": test}
    out = {}
    for split, names in spec.items():
        unknown = [n for n in names if n not in pos]
        if unknown:
            raise DataError(
                f"{root / 'meta.yaml'}: splits.{split} names images not in landmarks.csv: {unknown[:3]}"
            )
        out[split] = np.array([pos[n] for n in names])
    if "train" not in out:
        raise DataError(f"{root / 'meta.yaml'}: splits must include 'train'")
    if "val" not in out:
        out["train"], out["val"] = split_train_val(out["train"], val_fraction)
    if not [s for s in out if s not in ("train", "val")]:
        raise DataError(
            f"{root / 'meta.yaml'}: splits need at least one test split besides train and val"
        )
    return out


def write_folder(ds: LandmarkDataset, out: str | Path, only_splits: list[str] | None = None) -> Path:
    """Write a dataset in the generic folder format (PNG images, landmarks.csv, meta.yaml).

    only_splits: write just these splits' images (meta.yaml then has no splits: such a
    folder is for `distlmk predict --truth`, not for training)."""
    import cv2

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if only_splits:
        unknown = sorted(set(only_splits) - set(ds.splits))
        if unknown:
            raise DataError(f"--split {unknown}: not a split of {ds.name} (splits: {sorted(ds.splits)})")
        keep = sorted({int(i) for s in only_splits for i in ds.splits[s]})
    else:
        keep = range(len(ds.images))
    rows = ["image,landmark,x,y"]
    names = {}
    for i in keep:
        name = f"{ds.image_ids[i]}.png"
        cv2.imwrite(str(out / "images" / name), ds.images[i])
        names[i] = name
        rows += [f"{name},{k},{x:.3f},{y:.3f}" for k, (x, y) in enumerate(ds.landmarks[i])]
    (out / "landmarks.csv").write_text("\n".join(rows) + "\n")
    meta = {
        "spacing_mm": float(ds.spacing_mm[0]),
        "landmark_names": list(ds.landmark_names),
    }
    if not only_splits:
        meta["splits"] = {s: [names[int(i)] for i in idx] for s, idx in ds.splits.items()}
    (out / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out
