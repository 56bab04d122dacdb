"""The one inference path: resized uint8 images -> heatmaps -> decoded points in original pixels.

`Trainer.predict` (validation and test metrics) and `distlmk predict` both call
`predict_points`, on images resized by `distlmk.data.transforms.resize_to_input`, so a
model's predictions on an image are the ones its evaluation scored.
"""

from __future__ import annotations

import numpy as np
import torch

from distlmk.data.transforms import to_original
from distlmk.heatmap import GaussianHeatmapCodec


@torch.no_grad()
def predict_points(
    model: torch.nn.Module,
    codec: GaussianHeatmapCodec,
    images: np.ndarray,
    scale: np.ndarray,
    device: torch.device,
    amp: bool = False,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 [N, h, w] at the input size, scale [N, 2] original/input (sx, sy)
    -> (points [N, L, 2] in original pixels, heatmap peak values [N, L]). The codec decodes to
    input pixels (it owns the heatmap stride); `to_original` maps them to the original image."""
    model.eval()
    n = len(images)
    pts_out, conf_out = None, None
    for s in range(0, n, batch_size):
        x = torch.from_numpy(images[s : s + batch_size].astype(np.float32) / 255.0)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            hm = model(x.to(device, non_blocking=True)[:, None])
        pts, maxval = codec.decode(hm)
        if pts_out is None:
            pts_out = np.empty((n, pts.shape[1], 2))
            conf_out = np.empty((n, pts.shape[1]))
        pts_out[s : s + batch_size] = to_original(pts.cpu().numpy(), scale[s : s + batch_size])
        conf_out[s : s + batch_size] = maxval.cpu().numpy()
    if pts_out is None:
        return np.empty((0, 0, 2)), np.empty((0, 0))
    return pts_out, conf_out
