"""Gaussian heatmap codec: landmarks + per-landmark sigma <-> heatmaps (mmpose-codec style).

The codec owns the mapping between the network's input and its heatmaps: points are in input
pixels on both sides, heatmaps are at input/stride. Pixel centres are at integer coordinates in
both grids, and heatmap pixel j covers input pixels [j*stride, (j+1)*stride), so
heatmap = (input + 0.5) / stride - 0.5 and input = (heatmap + 0.5) * stride - 0.5 (`to_heatmap`,
`to_input`; at stride 1 the identity up to float rounding, as training has always computed it).
Sigmas (and covariances) are in heatmap pixels.

Contract:
- `encode(points [B,L,2], sigma [L] or [B,L], ...) -> [B,L,H,W]`, points in input pixels
  (x, y). Vectorised and separable on the points' device; differentiable in sigma (the
  `learned` controller trains sigma through it).
- `encode_anisotropic(points [B,L,2], cov [L,3] or [B,L,3])`: one rotated Gaussian per
  landmark, cov = (sigma_x, sigma_y, angle): sigma_x along the axis at `angle` radians from
  the image x axis (towards +y, i.e. clockwise on screen since y points down), sigma_y
  across it. Not separable, still one vectorised expression; differentiable in all three
  (the `learned_anisotropic` controller trains them). sigma_x == sigma_y gives `encode`.
- `decode(heatmaps [B,L,H,W]) -> (points [B,L,2] float64 input pixels, maxvals [B,L])`: argmax
  plus the DARK Taylor refinement on the log heatmap (Zhang et al. 2020), then `to_input` in
  float64 (exact for power-of-two strides). On an exact Gaussian, whose log is quadratic, the
  refinement is exact up to float precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GaussianHeatmapCodec:
    def __init__(self, size: tuple[int, int], stride: int = 1):
        """size (H, W) of the heatmaps; stride: input pixels per heatmap pixel (the model's out_stride)."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.size = tuple(size)
        self.stride = int(stride)

    def to_heatmap(self, points: torch.Tensor) -> torch.Tensor:
        """Input pixels -> heatmap pixels, [..., 2] (the points' dtype)."""
        return (points + 0.5) / self.stride - 0.5

    def to_input(self, points: torch.Tensor) -> torch.Tensor:
        """Heatmap pixels -> input pixels, [..., 2] in float64."""
        return (points.double() + 0.5) * self.stride - 0.5

    def encode(self, points: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        h, w = self.size
        points = self.to_heatmap(points)
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

    def encode_anisotropic(self, points: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """Peak-1 rotated Gaussians: exp(-d^T S^-1 d / 2), S = R(angle) diag(sx^2, sy^2) R^T."""
        h, w = self.size
        points = self.to_heatmap(points)
        dev, dt = points.device, points.dtype if points.is_floating_point() else torch.float32
        b, n, _ = points.shape
        cov = torch.as_tensor(cov, device=dev, dtype=dt)
        cov = cov.expand(b, n, 3) if cov.dim() == 2 else cov
        sx, sy, ang = cov[..., 0], cov[..., 1], cov[..., 2]  # [B, L]
        c, s = torch.cos(ang), torch.sin(ang)
        ix, iy = 1.0 / sx**2, 1.0 / sy**2
        a = (c * c * ix + s * s * iy)[..., None, None]  # S^-1 = [[a, k], [k, d]]
        k = (c * s * (ix - iy))[..., None, None]
        d = (s * s * ix + c * c * iy)[..., None, None]
        dx = (torch.arange(w, device=dev, dtype=dt) - points[..., 0:1])[..., None, :]  # [B, L, 1, W]
        dy = (torch.arange(h, device=dev, dtype=dt) - points[..., 1:2])[..., :, None]  # [B, L, H, 1]
        return torch.exp(-0.5 * (a * dx**2 + 2 * k * dx * dy + d * dy**2))

    @torch.no_grad()
    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hm = heatmaps.detach().float()
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
        return self.to_input(pts.reshape(b, n, 2)), maxval.reshape(b, n)
