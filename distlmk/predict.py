"""`distlmk predict`: landmarks on new images with a trained model, no config needed.

Writes OUT/predictions.csv with one row per image and landmark
(image,landmark,name,x,y,x_mm,y_mm,confidence): x, y in original image pixels (pixel
centres at integer coordinates, x along the width), x_mm/y_mm = pixels * spacing (empty
when the spacing is unknown), confidence = the landmark heatmap's peak value (higher is
surer; comparable between images of one model, not between models). With overlays,
OUT/overlays/<image>.png shows the points (and the ground truth with --truth).

Spacing per image: the DICOM header; else --spacing-mm; else spacing_mm of a folder-format
meta.yaml beside the images folder (DIR/../meta.yaml or DIR/meta.yaml); else unknown.

Images that cannot be read are listed on stderr and in OUT/failed.csv; the others are still
predicted. Exit codes (see cli.py): 0 all predicted, 3 some images failed, 2 nothing to do
(no images, unreadable model, bad arguments).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from distlmk.data.dataset import DataError
from distlmk.data.dicom import is_dicom_file
from distlmk.data.io import IMAGE_SUFFIXES, read_image

COLUMNS = ["image", "landmark", "name", "x", "y", "x_mm", "y_mm", "confidence"]


@dataclass
class PredictResult:
    out_dir: Path
    predicted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    seconds: float = 0.0
    evaluation: dict | None = None


def list_images(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files of the given folders (not recursive, sorted) and files, and the missing ones."""
    files, missing = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and (p / "images").is_dir() and not any(
            f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()
        ):
            p = p / "images"  # a folder-format dataset root
        if p.is_dir():
            files += sorted(
                f for f in p.iterdir() if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or is_dicom_file(f))
            )
        elif p.is_file():
            files.append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    return files, missing


def _folder_spacing(folder: Path) -> float | None:
    for meta in (folder.parent / "meta.yaml", folder / "meta.yaml"):
        if meta.is_file():
            try:
                value = (yaml.safe_load(meta.read_text()) or {}).get("spacing_mm")
            except (yaml.YAMLError, AttributeError):
                return None
            return float(value) if isinstance(value, int | float) else None
    return None


def read_truth(path: Path) -> dict[str, np.ndarray]:
    """landmarks.csv (image,landmark,x,y) -> image name -> [L, 2]."""
    from distlmk.data.folder import read_landmarks_csv

    table = read_landmarks_csv(path)
    return {name: np.array([per[k][:2] for k in sorted(per)], np.float64) for name, per in table.items()}


def _names(files: list[Path]) -> list[str]:
    """The image column: file names, or paths where two inputs share a name."""
    names = [f.name for f in files]
    if len(set(names)) == len(names):
        return names
    return [str(f) for f in files]


def predict_images(
    model_path: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path = "predictions",
    device: str = "auto",
    overlays: bool = True,
    spacing_mm: float | None = None,
    truth: str | Path | None = None,
    batch_size: int = 16,
    log=print,
    warn=lambda msg: print(msg, file=sys.stderr),
) -> PredictResult:
    from distlmk.infer.model import load_model

    t0 = time.perf_counter()
    model = load_model(model_path, device)
    files, failed = list_images(inputs)
    if not files:
        raise DataError(
            f"no images found in {', '.join(str(i) for i in inputs)} (suffixes {', '.join(IMAGE_SUFFIXES)})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if overlays:
        (out / "overlays").mkdir(exist_ok=True)
    gt = read_truth(Path(truth)) if truth else {}
    names = model.landmark_names
    res = PredictResult(out, failed=list(failed))
    folder_spacing: dict[Path, float | None] = {}
    errors_mm, errors_px = [], []
    log(f"model {model.source} ({model.meta.get('method')}, {len(names)} landmarks) on {model.device}; "
        f"{len(files)} images")
    with (out / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        ids = _names(files)
        for s in range(0, len(files), batch_size):
            batch, batch_ids, spacings = [], [], []
            for f, image_id in zip(files[s : s + batch_size], ids[s : s + batch_size], strict=True):
                try:
                    loaded = read_image(f)
                except DataError as e:
                    res.failed.append((image_id, str(e)))
                    warn(f"skipped {image_id}: {e}")
                    continue
                sp = loaded.spacing_mm if loaded.spacing_mm is not None else spacing_mm
                if sp is None:
                    if f.parent not in folder_spacing:
                        folder_spacing[f.parent] = _folder_spacing(f.parent)
                    sp = folder_spacing[f.parent]
                batch.append(loaded.pixels)
                batch_ids.append(image_id)
                spacings.append(sp)
            if not batch:
                continue
            pts, conf = model.predict(batch, batch_size)
            for img, image_id, sp, p, c in zip(batch, batch_ids, spacings, pts, conf, strict=True):
                for k in range(len(names)):
                    x, y = p[k]
                    mm = ("", "") if sp is None else (f"{x * sp:.4f}", f"{y * sp:.4f}")
                    writer.writerow([image_id, k, names[k], f"{x:.4f}", f"{y:.4f}", *mm, f"{c[k]:.5f}"])
                truth_pts = gt.get(image_id)
                if truth_pts is not None and truth_pts.shape == p.shape:
                    e = np.linalg.norm(p - truth_pts, axis=-1)
                    errors_px.append(e)
                    errors_mm.append(e * sp if sp is not None else np.full_like(e, np.nan))
                if overlays:
                    ov = draw_overlay_for(img, p, truth_pts)
                    cv2.imwrite(str(out / "overlays" / f"{Path(image_id).stem}.png"), ov)
                res.predicted.append(image_id)
    if res.failed:
        with (out / "failed.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "reason"])
            w.writerows(res.failed)
    if gt and not errors_px:
        warn(f"--truth {truth}: none of its images matched the predicted ones by file name")
    if errors_px:
        res.evaluation = _evaluation(np.stack(errors_px), np.stack(errors_mm), names)
        (out / "evaluation.json").write_text(json.dumps(res.evaluation, indent=2) + "\n")
    res.seconds = time.perf_counter() - t0
    return res


def draw_overlay_for(img: np.ndarray, pred: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
    from distlmk.analysis.overlays import draw_overlay

    return draw_overlay(img, pred, gt)


def _evaluation(err_px: np.ndarray, err_mm: np.ndarray, names: list[str]) -> dict:
    from distlmk.train.metrics import summarize

    out = {"num_images": int(len(err_px)), "mre_px": float(err_px.mean())}
    if np.all(np.isfinite(err_mm)):
        out.update(summarize(err_mm))
        out["per_landmark"] = dict(zip(names, out.pop("per_landmark_mre_mm"), strict=True))
    return out


def format_result(res: PredictResult) -> str:
    lines = [
        f"predicted {len(res.predicted)} images in {res.seconds:.1f} s -> {res.out_dir / 'predictions.csv'}"
    ]
    if res.evaluation:
        ev = res.evaluation
        if "mre_mm" in ev:
            lines.append(
                f"against --truth ({ev['num_images']} images): MRE {ev['mre_mm']:.3f} mm, "
                f"SDR2 {ev['sdr']['2.0']:.1f}%, MRE {ev['mre_px']:.3f} px"
            )
        else:
            lines.append(f"against --truth ({ev['num_images']} images): MRE {ev['mre_px']:.3f} px (spacing unknown)")
    if res.failed:
        lines.append(f"{len(res.failed)} image(s) failed (listed in {res.out_dir / 'failed.csv'}):")
        lines += [f"  {name}: {why}" for name, why in res.failed]
    return "\n".join(lines)
