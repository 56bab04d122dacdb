"""Pictures people look at: prediction overlays, per-landmark table, CED curves.

Every function takes plain arrays / DataFrames (no experiment folder, no torch, no ray), so
`distlmk analyze` and the `compare` report both call them:
- `per_landmark_table(errors_by_method, names)` -> DataFrame (method, landmark, MRE, SDR 2/2.5/3/4 mm);
- `per_landmark_markdown(table)` -> Markdown, landmarks as rows, one MRE / SDR2 column pair per method;
- `ced_curves(errors_by_method, path)` -> cumulative error distribution PNG;
- `best_median_worst(errors)` -> image indices by per-image MRE;
- `overlay_grid(rows, path)` -> PNG of ground truth vs prediction panels (rows = methods).
`errors_by_method` maps a label (method or variant) to radial errors [N, L] in mm (all
test images of all its trials stacked).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from distlmk.analysis.overlays import draw_overlay, landmark_colors  # noqa: E402
from distlmk.schema import SDR_THRESHOLDS_MM, sdr_name  # noqa: E402


def per_landmark_table(errors_by_method: dict[str, np.ndarray], names: list[str] | None = None) -> pd.DataFrame:
    rows = []
    for method, err in errors_by_method.items():
        err = np.asarray(err, float)
        labels = names if names and len(names) == err.shape[1] else [f"landmark_{k}" for k in range(err.shape[1])]
        for k in range(err.shape[1]):
            e = err[:, k]
            row = {"method": method, "landmark": k, "name": labels[k], "n": int(len(e)), "mre_mm": float(e.mean())}
            row.update({sdr_name(t): float(100 * (e <= t).mean()) for t in SDR_THRESHOLDS_MM})
            rows.append(row)
        row = {"method": method, "landmark": -1, "name": "all", "n": int(err.size), "mre_mm": float(err.mean())}
        row.update({sdr_name(t): float(100 * (err <= t).mean()) for t in SDR_THRESHOLDS_MM})
        rows.append(row)
    return pd.DataFrame(rows)


def per_landmark_markdown(table: pd.DataFrame) -> str:
    """Landmarks as rows; per method its MRE (mm) and SDR 2 / 2.5 / 3 / 4 mm (%)."""
    if table.empty:
        return ""
    methods = list(dict.fromkeys(table["method"]))
    head = "| landmark | " + " | ".join(f"{m} MRE mm | {m} SDR 2/2.5/3/4 mm %" for m in methods) + " |"
    sep = "|---|" + "---:|---:|" * len(methods)
    lines = [head, sep]
    order = table.drop_duplicates("landmark")[["landmark", "name"]].sort_values("landmark", key=lambda s: s.where(s >= 0, 1e9))
    best = table.groupby("landmark")["mre_mm"].min()
    for lm, name in order.itertuples(index=False):
        cells = []
        for m in methods:
            r = table[(table["method"] == m) & (table["landmark"] == lm)]
            if r.empty:
                cells += ["", ""]
                continue
            r = r.iloc[0]
            mre = f"{r['mre_mm']:.2f}"
            if len(methods) > 1 and np.isclose(r["mre_mm"], best[lm]):
                mre = f"**{mre}**"
            cells += [mre, " / ".join(f"{r[sdr_name(t)]:.0f}" for t in SDR_THRESHOLDS_MM)]
        label = "**all**" if lm < 0 else f"{lm} {name}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ced_curves(errors_by_method: dict[str, np.ndarray], path: Path, colors: dict[str, str] | None = None,
               max_mm: float | None = None) -> Path | None:
    """Cumulative error distribution: fraction of landmark predictions within each radius."""
    if not errors_by_method:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    top = max_mm or float(np.nanpercentile(np.concatenate([np.ravel(e) for e in errors_by_method.values()]), 98))
    top = max(top, 4.5)
    styles = ["-", "--", ":", "-."]
    for i, (label, err) in enumerate(errors_by_method.items()):
        e = np.sort(np.ravel(np.asarray(err, float)))
        frac = np.arange(1, len(e) + 1) / len(e)
        ax.step(e, 100 * frac, where="post", ls=styles[i % len(styles)], color=(colors or {}).get(label),
                label=f"{label} (MRE {e.mean():.2f} mm)")
    for t in SDR_THRESHOLDS_MM:
        ax.axvline(t, color="0.7", lw=0.7, zorder=0)
    ax.set_xlim(0, top)
    ax.set_ylim(0, 100)
    ax.set_xlabel("radial error (mm)")
    ax.set_ylabel("landmarks within (%)")
    ax.set_title("Cumulative error distribution (test; grey lines: SDR radii)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def best_median_worst(errors: np.ndarray) -> dict[str, int]:
    """Indices of the images with the lowest, median and highest mean radial error."""
    per_image = np.asarray(errors, float).mean(axis=1)
    order = np.argsort(per_image, kind="stable")
    return {"best": int(order[0]), "median": int(order[len(order) // 2]), "worst": int(order[-1])}


def overlay_grid(rows: list[list[dict]], path: Path, row_labels: list[str] | None = None,
                 names: list[str] | None = None) -> Path | None:
    """rows of panels; a panel is {"image": uint8 [H, W], "pred": [L, 2], "gt": [L, 2], "title": str}."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    ncols = max(len(r) for r in rows)
    h, w = rows[0][0]["image"].shape[:2]
    cell = 3.4
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell * ncols * w / h + 1.6, cell * len(rows) + 0.6),
                             squeeze=False)
    for i, panels in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(panels):
                continue
            p = panels[j]
            ov = draw_overlay(p["image"], np.asarray(p["pred"]), None if p.get("gt") is None else np.asarray(p["gt"]),
                              label=False)
            ax.imshow(cv2.cvtColor(ov, cv2.COLOR_BGR2RGB))
            ax.set_title(p.get("title", ""), fontsize=8)
        if row_labels:
            axes[i][0].text(-0.04, 0.5, row_labels[i], transform=axes[i][0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=9)
    n = len(rows[0][0]["pred"])
    colors = landmark_colors(n)
    labels = names if names and len(names) == n else [str(k) for k in range(n)]
    handles = [plt.Line2D([], [], marker="o", ls="", color=np.array(c[::-1]) / 255, label=f"{k} {labels[k]}")
               for k, c in enumerate(colors)]
    fig.legend(handles=handles, loc="center right", fontsize=6, frameon=False)
    fig.suptitle("Test predictions: dot = prediction, ring = ground truth (line joins them)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sigma_covariances(cov_by_trial: dict[str, np.ndarray], path: Path, names: list[str] | None = None,
                      mm_per_px: float | None = None) -> Path | None:
    """Learned anisotropic targets: one ellipse (1 sigma) per landmark per trial, and sx/sy/angle
    over epochs. cov_by_trial maps a label to [epochs, L, 3] (sx, sy, angle rad)."""
    if not cov_by_trial:
        return None
    labels = list(cov_by_trial)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ax = axes[0]
    first = np.asarray(cov_by_trial[labels[0]], float)
    n = first.shape[1]
    cols = max(1, int(np.ceil(np.sqrt(n))))
    from matplotlib.patches import Ellipse

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    unit = mm_per_px or 1.0
    span = 0.0
    for t, label in enumerate(labels):
        c = np.asarray(cov_by_trial[label], float)[-1]
        span = max(span, float(c[:, :2].max()) * unit)
        for k in range(n):
            cx, cy = (k % cols), (k // cols)
            ax.add_patch(Ellipse((cx, cy), 2 * c[k, 0] * unit, 2 * c[k, 1] * unit, angle=np.degrees(c[k, 2]),
                                 fill=False, color=colors[t % len(colors)], lw=1.2,
                                 label=label if k == 0 else None))
    # each cell holds one landmark; scale ellipses to fit the grid
    for p in ax.patches:
        p.set_width(p.get_width() / (2.2 * span))
        p.set_height(p.get_height() / (2.2 * span))
    lab = names if names and len(names) == n else [str(k) for k in range(n)]
    for k in range(n):
        ax.text(k % cols, k // cols + 0.48, lab[k][:14], ha="center", va="top", fontsize=6)
    ax.set_xlim(-0.6, cols - 0.4)
    ax.set_ylim(n // cols + 0.6, -0.6)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"final 1-sigma ellipses (largest axis {span:.2f} {'mm' if mm_per_px else 'heatmap px'})",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    for t, label in enumerate(labels):
        c = np.asarray(cov_by_trial[label], float)
        ep = np.arange(1, len(c) + 1)
        ratio = np.maximum(c[..., 0], c[..., 1]) / np.minimum(c[..., 0], c[..., 1])
        ax.plot(ep, np.sqrt(c[..., 0] * c[..., 1]).mean(axis=1), color=colors[t % len(colors)],
                label=f"{label}: mean sqrt(sx sy)")
        ax.plot(ep, ratio.mean(axis=1), "--", color=colors[t % len(colors)], label=f"{label}: mean long/short axis")
    ax.set_xlabel("epoch")
    ax.set_ylabel("heatmap px / ratio")
    ax.set_title("learned covariance over training", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
