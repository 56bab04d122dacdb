"""Landmarks drawn on their image: ground truth (rings) vs prediction (dots), one colour per landmark.

OpenCV and numpy only (no torch, no ray): used by `distlmk predict` for its overlay PNGs and by
`distlmk analyze` / `compare` for the best, median and worst test images of each method.
"""

from __future__ import annotations

import cv2
import numpy as np

# tab20-like, as BGR: neighbouring landmarks get clearly different colours
_PALETTE_RGB = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (219, 219, 141),
    (158, 218, 229), (57, 59, 121),
]


def landmark_colors(n: int) -> list[tuple[int, int, int]]:
    """n BGR colours (the palette repeats past 20)."""
    return [tuple(reversed(_PALETTE_RGB[k % len(_PALETTE_RGB)])) for k in range(n)]


def draw_overlay(
    image: np.ndarray,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    min_size: int = 512,
    label: bool = True,
) -> np.ndarray:
    """uint8 [H, W] (or BGR) image, points [L, 2] (x, y) in its pixels -> BGR uint8 overlay.

    Predictions are filled dots with their landmark index, ground truth rings of the same
    colour joined to the prediction by a line. Small images are enlarged (nearest) to at
    least `min_size` pixels on the long side so the marks stay readable."""
    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    f = max(1.0, min_size / max(img.shape[:2]))
    if f > 1:
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
    else:
        img = img.copy()
    shift = 4  # sub-pixel drawing

    def pt(p):
        # pixel centres at integer coordinates: original x maps to (x + 0.5) * f - 0.5
        return tuple(int(round(((v + 0.5) * f - 0.5) * (1 << shift))) for v in p)

    r = max(3, int(round(max(img.shape[:2]) / 160)))
    colors = landmark_colors(len(pred))
    for k, c in enumerate(colors):
        p = pred[k]
        if not np.all(np.isfinite(p)):
            continue
        if gt is not None and np.all(np.isfinite(gt[k])):
            cv2.line(img, pt(gt[k]), pt(p), c, 1, cv2.LINE_AA, shift)
            cv2.circle(img, pt(gt[k]), (r + 2) << shift, c, 1, cv2.LINE_AA, shift)
        cv2.circle(img, pt(p), r << shift, c, -1, cv2.LINE_AA, shift)
        if label:
            x, y = ((p + 0.5) * f - 0.5).astype(int)
            cv2.putText(img, str(k), (x + r + 2, y - r), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * r / 3, c, 1, cv2.LINE_AA)
    return img
