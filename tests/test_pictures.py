"""Analysis pictures from plain arrays: overlays, per-landmark table, CED, covariance ellipses."""

import cv2
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


def _panels_in_png(png: np.ndarray, grey: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each shown image in a saved figure: the connected areas of the images'
    uniform grey, row by row, left to right."""
    mask = (np.abs(png.astype(int) - grey).max(axis=2) <= 3).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    boxes = [tuple(int(v) for v in s[:4]) for s in stats[1:] if s[4] > 2000]
    return sorted(boxes, key=lambda b: (round(b[1] / 20), b[0]))


def test_overlay_grid_and_covariance_plot(tmp_path):
    """The grid shows each panel's points where they are: read back from the PNG, every landmark's
    colour sits at that panel's prediction, and nowhere else in the panel (the same landmark is
    elsewhere in the next panel, so a flipped, transposed or shared overlay fails)."""
    h, w, grey = 50, 40, 80
    img = np.full((h, w), grey, np.uint8)
    preds = [np.array([[10.0, 10.0], [20.0, 30.0]]), np.array([[30.0, 40.0], [8.0, 20.0]]),
             np.array([[25.0, 12.0], [12.0, 38.0]])]
    panels = [{"image": img, "pred": pr, "gt": pr + [1.0, -1.0], "title": f"p{i}"} for i, pr in enumerate(preds)]
    p = pictures.overlay_grid([panels[:2], panels[2:]], tmp_path / "grid.png", ["fixed", "learned"], ["a", "b"])
    png = cv2.imread(str(p))
    boxes = _panels_in_png(png, grey)
    assert len(boxes) == 3, boxes
    colours = landmark_colors(2)
    for (bx, by, bw, bh), pred in zip(boxes, preds, strict=True):
        assert abs(bh / bw - h / w) < 0.03, (bw, bh)  # the whole image is shown, unstretched
        scale = bw / w
        for k, c in enumerate(colours):
            want = np.array([bx + (pred[k, 0] + 0.5) * scale, by + (pred[k, 1] + 0.5) * scale])
            near_c = np.abs(png[by:by + bh, bx:bx + bw].astype(int) - np.array(c)).max(axis=2) <= 25
            ys, xs = np.nonzero(near_c)
            assert len(xs) >= 5, f"landmark {k}: its colour is missing from the panel at {pred[k]}"
            got = np.stack([xs + bx, ys + by], axis=1)
            dist = np.linalg.norm(got - want, axis=1) / scale  # in image pixels
            assert dist.max() < 2.5, f"landmark {k}: colour {dist.max():.1f} px away from its point {pred[k]}"
            assert np.linalg.norm(got.mean(axis=0) - want) / scale < 0.6, (k, got.mean(axis=0), want)
    cov = np.tile(np.array([[3.0, 2.0, 0.3], [2.0, 2.0, 0.0]]), (4, 1, 1))
    assert pictures.sigma_covariances({"trial 1": cov}, tmp_path / "cov.png", ["a", "b"]).stat().st_size > 1000
    assert pictures.overlay_grid([], tmp_path / "none.png") is None
    assert isinstance(pictures.per_landmark_table({}, None), pd.DataFrame)
