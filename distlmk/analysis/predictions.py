"""The prediction pictures of `distlmk analyze` from an experiment's records (glue around pictures.py).

Reads, from each finished trial's final record, the per-image test errors
(`test/<split>/errors_mm`, [N, L] mm) and predicted points (`test/<split>/pred_px`,
[N, L, 2] original pixels), and the test images from the dataset in the saved search config
(read with distlmk.data: OpenCV/numpy only). Labels are method variants (fixed σ=2 and
fixed σ=3 are different methods here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import schema as S
from distlmk.analysis import pictures
from distlmk.analysis.summary import FINISHED
from distlmk.rundir import SEARCH_CONFIG


def _array(v) -> np.ndarray | None:
    """A nested record value (`schema.as_array`); None when missing or not a regular array."""
    try:
        return S.as_array(v)
    except (TypeError, ValueError):
        return None


def test_splits(records: pd.DataFrame) -> list[str]:
    """Test splits whose per-image errors the records hold."""
    return [s for s in S.test_splits(records.columns) if S.test_key(s, "errors_mm") in records]


def final_rows(records: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    done = set(summary.loc[summary["status"].isin(FINISHED), "trial_id"]) if "status" in summary else set()
    last = records.sort_values("iteration").groupby("trial_id").tail(1)
    return last[last["trial_id"].isin(done)]


def errors_by_variant(finals: pd.DataFrame, split: str) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    col = S.test_key(split, "errors_mm")
    for r in finals.sort_values("variant").to_dict("records"):
        e = _array(r.get(col))
        if e is not None and e.ndim == 2:
            out.setdefault(r["variant"], []).append(e)
    return {k: np.concatenate(v) for k, v in out.items()}


def load_test_dataset(search_cfg: dict):
    """The experiment's dataset, from its data config (None without one)."""
    from distlmk.config import DataConfig, from_dict
    from distlmk.data import load_dataset

    data = (search_cfg.get("experiment") or {}).get("data")
    if not data:
        return None
    return load_dataset(from_dict(DataConfig, data, f"{SEARCH_CONFIG}: experiment.data"))


def split_images(ds, split: str):
    """(images, ground truth [N, L, 2], landmark names) of a test split of a loaded dataset."""
    if ds is None or split not in ds.splits:
        return None
    idx = ds.splits[split]
    return [ds.images[i] for i in idx], ds.landmarks[idx], ds.landmark_names


def overlay_rows(finals: pd.DataFrame, split: str, images, gt, val_col: str) -> tuple[list, list]:
    """Per variant: its best trial on validation; that trial's best, median and worst test images."""
    rows, labels = [], []
    ecol, pcol = S.test_key(split, "errors_mm"), S.test_key(split, "pred_px")
    for variant, g in finals.sort_values("variant").groupby("variant", sort=False):
        r = g.sort_values([val_col, "trial_id"]).iloc[0].to_dict()
        err, pred = _array(r.get(ecol)), _array(r.get(pcol))
        if err is None or pred is None or len(pred) != len(images):
            continue
        panels = []
        for which, i in pictures.best_median_worst(err).items():
            panels.append({"image": images[i], "pred": pred[i], "gt": gt[i],
                           "title": f"{which}: image {i}, MRE {err[i].mean():.2f} mm"})
        rows.append(panels)
        labels.append(f"{variant}\n(trial {str(r['trial_id'])[-5:]})")
    return rows, labels


def prediction_section(records: pd.DataFrame, summary: pd.DataFrame, search_cfg: dict, out: Path,
                       colors: dict | None = None, val_col: str = S.VAL_MRE) -> tuple[dict[str, Path], list[str]]:
    """Figures (title -> path) and Markdown lines: per-landmark table, CED and overlays per test split."""
    figs: dict[str, Path] = {}
    lines: list[str] = []
    finals = final_rows(records, summary)
    if finals.empty:
        return figs, lines
    split_errs = [(split, errs) for split in test_splits(records) if (errs := errors_by_variant(finals, split))]
    ds, load_error = None, None
    if split_errs:  # decoded once for every test split (ISBI: Test1 and Test2)
        try:
            ds = load_test_dataset(search_cfg)
        except Exception as e:  # the data may have moved since the run; the rest of the report stands
            load_error = e
    for split, errs in split_errs:
        names = None
        loaded = None
        error = load_error
        if error is None:
            try:
                loaded = split_images(ds, split)
            except Exception as e:
                error = e
        if error is not None:
            lines += [f"(test images of {split} not loaded for overlays: {error})", ""]
        if loaded is not None:
            names = loaded[2]
        table = pictures.per_landmark_table(errs, names)
        table.to_csv(out / f"per_landmark_{split}.csv", index=False)
        lines += [f"## Per-landmark test errors ({split})", "",
                  "MRE in mm (bold: lowest); SDR: % within 2 / 2.5 / 3 / 4 mm; all test images of all finished "
                  "trials of each method.", "", pictures.per_landmark_markdown(table), ""]
        vcolors = None
        if colors:
            vmethod = dict(zip(finals["variant"], finals["method"], strict=False))
            vcolors = {v: colors.get(vmethod.get(v)) for v in errs}
        ced = pictures.ced_curves(errs, out / f"ced_{split}.png", vcolors)
        if ced is not None:
            figs[f"Cumulative error distribution ({split})"] = ced
        if loaded is not None and val_col in finals:
            rows, labels = overlay_rows(finals, split, loaded[0], loaded[1], val_col)
            grid = pictures.overlay_grid(rows, out / f"overlays_{split}.png", labels, names)
            if grid is not None:
                figs[f"Test predictions: best, median, worst image per method ({split})"] = grid
    return figs, lines


def covariance_figure(records: pd.DataFrame, path: Path, names: list[str] | None = None,
                      max_trials: int = 4) -> Path | None:
    """Ellipses and sx/sy/angle curves of the learned_anisotropic trials (records' sigma/cov)."""
    col = S.SIGMA_COV
    if col not in records:
        return None
    covs = {}
    for tid, g in records[records[col].notna()].sort_values("epoch").groupby("trial_id"):
        arr = _array(list(g[col]))
        if arr is not None and arr.ndim == 3:
            covs[f"{g['variant'].iloc[0]} seed {int(g['seed'].iloc[0])} ({str(tid)[-5:]})"] = arr
        if len(covs) >= max_trials:
            break
    return pictures.sigma_covariances(covs, path, names) if covs else None
