"""Gaussian heatmap codec: landmarks + per-landmark sigma <-> heatmaps (mmpose-codec style).

Contract:
- `encode(points [B,L,2], sigma [L] or [B,L], ...) -> [B,L,H,W]`, points in heatmap pixels
  (x, y), pixel centres at integer coordinates. Vectorised and separable on the points'
  device; differentiable in sigma (the `learned` controller trains sigma through it).
- `decode(heatmaps [B,L,H,W]) -> (points [B,L,2], maxvals [B,L])`: argmax plus the DARK
  Taylor refinement on the log heatmap (Zhang et al. 2020). On an exact Gaussian, whose
  log is quadratic, the refinement is exact up to float precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class GaussianHeatmapCodec:
    def __init__(self, size: tuple[int, int], blur_sigma: float = 0.0):
        """size (H, W) of the heatmaps; blur_sigma > 0 smooths network outputs before decoding."""
        self.size = tuple(size)
        self.blur_sigma = blur_sigma

    def encode(self, points: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        h, w = self.size
        dev, dt = points.device, points.dtype if points.is_floating_point() else torch.float32
        b, n, _ = points.shape
        sigma = torch.as_tensor(sigma, device=dev, dtype=dt)
        sigma = sigma.expand(b, n) if sigma.dim() <= 1 else sigma
        xs = torch.arange(w, device=dev, dtype=dt)
        ys = torch.arange(h, device=dev, dtype=dt)
        inv = 1.0 / (2.0 * sigma**2)  # [B, L]
        gx = torch.exp(-((xs - points[..., 0:1]) ** 2) * inv[..., None])  # [B, L, W]
        gy = torch.exp(-((ys - points[..., 1:2]) ** 2) * inv[..., None])  # [B, L, H]
        return gy[..., :, None] * gx[..., None, :]  # peak 1 at the landmark

    def _blur(self, hm: torch.Tensor) -> torch.Tensor:
        r = max(1, int(math.ceil(3 * self.blur_sigma)))
        k = torch.exp(
            -(torch.arange(-r, r + 1, device=hm.device, dtype=hm.dtype) ** 2)
            / (2 * self.blur_sigma**2)
        )
        k = k / k.sum()
        b, n, h, w = hm.shape
        x = hm.reshape(b * n, 1, h, w)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
        return x.reshape(b, n, h, w)

    @torch.no_grad()
    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hm = heatmaps.detach().float()
        if self.blur_sigma > 0:
            hm = self._blur(hm)
        b, n, h, w = hm.shape
        flat = hm.reshape(b * n, h * w)
        maxval, arg = flat.max(dim=1)
        ix, iy = arg % w, torch.div(arg, w, rounding_mode="floor")
        # 3x3 neighbourhood of the log heatmap around the argmax (replicate border)
        logh = torch.log(hm.clamp_min(1e-10)).reshape(b * n, 1, h, w)
        pad = F.pad(logh, (1, 1, 1, 1), mode="replicate")[:, 0]
        rows = torch.arange(b * n, device=hm.device)

        def at(dy: int, dx: int) -> torch.Tensor:
            return pad[rows, iy + 1 + dy, ix + 1 + dx]

        c = at(0, 0)
        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 1) - 2 * c + at(0, -1)
        dyy = at(1, 0) - 2 * c + at(-1, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = dxx * dyy - dxy**2
        ok = (det > 1e-12) & (dxx < 0) & (ix > 0) & (ix < w - 1) & (iy > 0) & (iy < h - 1)
        safe = torch.where(ok, det, torch.ones_like(det))
        ox = -(dyy * dx - dxy * dy) / safe
        oy = -(dxx * dy - dxy * dx) / safe
        ox = torch.where(ok, ox.clamp(-1, 1), torch.zeros_like(ox))
        oy = torch.where(ok, oy.clamp(-1, 1), torch.zeros_like(oy))
        pts = torch.stack([ix.to(hm.dtype) + ox, iy.to(hm.dtype) + oy], dim=-1)
        return pts.reshape(b, n, 2), maxval.reshape(b, n)
