"""U-Net for heatmap regression: image [B,1,H,W] -> L heatmaps [B,L,H/s,W/s] (s = out_stride)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with `depth` poolings (channels base*2^k), bilinear upsampling and skip concats.

    Why the details:
    - the decoder stops at stride `out_stride` (1, 2 or 4); sub-pixel decoding recovers the
      precision, and the full-resolution decoder block, the costliest one, is skipped;
    - the last block is at least 2*L channels wide: with fewer features than landmarks, the
      1x1 head cannot give every landmark its own peak and some channels never learn;
    - two coordinate channels (CoordConv) let similar-looking contours (a lip edge, the
      chin) be told apart by where they are, not only by how they look.
    """

    def __init__(
        self,
        num_landmarks: int,
        base_channels: int = 16,
        depth: int = 4,
        out_stride: int = 2,
        in_channels: int = 1,
    ):
        super().__init__()
        if out_stride not in (1, 2, 4) or 2 ** (out_stride.bit_length() - 1) > 2**depth:
            raise ValueError(
                f"model.out_stride must be 1, 2 or 4 (and below 2**depth), got {out_stride}"
            )
        self.out_stride = out_stride
        self.top = out_stride.bit_length() - 1  # decoder level the head reads from
        chans = [base_channels * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels + 2, chans[0])])
        self.down.extend(_block(chans[k - 1], chans[k]) for k in range(1, depth + 1))
        widths = {k: chans[k] for k in range(depth)}
        widths[self.top] = max(chans[self.top], 2 * num_landmarks)
        self.up = nn.ModuleList()
        prev = chans[depth]
        for k in reversed(range(self.top, depth)):
            self.up.append(_block(prev + chans[k], widths[k]))
            prev = widths[k]
        self.head = nn.Conv2d(prev, num_landmarks, 1)
        nn.init.normal_(self.head.weight, std=1e-3)  # start near an empty heatmap, not noise
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = (
            torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
            .view(1, 1, h, 1)
            .expand(b, 1, h, w)
        )
        xs = (
            torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
            .view(1, 1, 1, w)
            .expand(b, 1, h, w)
        )
        x = torch.cat([x, xs, ys], dim=1)
        skips = []
        for k, block in enumerate(self.down):
            if k > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[self.top : -1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def heatmap_size(input_size: tuple[int, int], out_stride: int) -> tuple[int, int]:
    """Heatmap (H, W) for an input size: what max-pooling leaves at that stride."""
    h, w = input_size
    for _ in range(out_stride.bit_length() - 1):
        h, w = h // 2, w // 2
    return h, w


def build_model(num_landmarks: int, base_channels: int, depth: int, out_stride: int = 2) -> UNet:
    return UNet(num_landmarks, base_channels, depth, out_stride)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
