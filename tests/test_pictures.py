"""Analysis pictures from plain arrays: overlays, per-landmark table, CED, covariance ellipses."""

import numpy as np
import pandas as pd

from distlmk.analysis import pictures
from distlmk.analysis.overlays import draw_overlay, landmark_colors


def test_overlay_marks_points_in_landmark_colours():
    img = np.zeros((60, 40), np.uint8)
    pred = np.array([[10.0, 12.0], [30.0, 50.0]])
    gt = np.array([[12.0, 14.0], [28.0, 47.0]])
    ov = draw_overlay(img, pred, gt, min_size=0, label=False)
    assert ov.shape == (60, 40, 3)
    c0, c1 = landmark_colors(2)
    assert tuple(ov[12, 10]) == c0 and tuple(ov[50, 30]) == c1  # filled dots at the predictions
    big = draw_overlay(img, pred, gt, min_size=240)
    assert big.shape == (240, 160, 3)
    assert tuple(big[int((12 + 0.5) * 4 - 0.5), int((10 + 0.5) * 4 - 0.5)]) == c0


def test_table_ced_and_best_median_worst(tmp_path):
    rng = np.random.default_rng(0)
    errs = {"fixed σ=2": rng.gamma(2, 1.0, (10, 3)), "learned": rng.gamma(2, 0.6, (10, 3))}
    t = pictures.per_landmark_table(errs, ["a", "b", "c"])
    assert set(t["method"]) == set(errs) and len(t) == 2 * 4
    row = t[(t["method"] == "learned") & (t["landmark"] == 1)].iloc[0]
    e = errs["learned"][:, 1]
    assert row["mre_mm"] == e.mean() and row["sdr_2_0"] == 100 * (e <= 2.0).mean()
    md = pictures.per_landmark_markdown(t)
    assert "| 1 b |" in md and "**all**" in md and md.count("**") >= 2
    assert pictures.ced_curves(errs, tmp_path / "ced.png").stat().st_size > 1000
    per_image = errs["fixed σ=2"].mean(axis=1)
    bmw = pictures.best_median_worst(errs["fixed σ=2"])
    assert per_image[bmw["best"]] == per_image.min() and per_image[bmw["worst"]] == per_image.max()


def test_overlay_grid_and_covariance_plot(tmp_path):
    img = np.full((50, 40), 80, np.uint8)
    panel = {"image": img, "pred": np.array([[10.0, 10.0], [20, 30]]), "gt": np.array([[11.0, 9.0], [21, 31]]),
             "title": "best"}
    p = pictures.overlay_grid([[panel, panel, panel], [panel]], tmp_path / "grid.png", ["fixed", "learned"], ["a", "b"])
    assert p.stat().st_size > 1000
    cov = np.tile(np.array([[3.0, 2.0, 0.3], [2.0, 2.0, 0.0]]), (4, 1, 1))
    assert pictures.sigma_covariances({"trial 1": cov}, tmp_path / "cov.png", ["a", "b"]).stat().st_size > 1000
    assert pictures.overlay_grid([], tmp_path / "none.png") is None
    assert isinstance(pictures.per_landmark_table({}, None), pd.DataFrame)
