"""Heatmap codec: vectorised encode vs a per-landmark Python loop (goal >= 20x), and decode
accuracy on sub-pixel round trips (goal <= 0.05 px) for sigma 1-8."""

from __future__ import annotations

import math

import torch

from benchmarks.common import best_of, write_result
from distlmk.heatmap import GaussianHeatmapCodec


def loop_encode(points: torch.Tensor, sigma: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The straightforward version: one Gaussian per (image, landmark) in Python."""
    h, w = size
    b, n, _ = points.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    out = torch.empty(b, n, h, w)
    for i in range(b):
        for k in range(n):
            x, y = points[i, k]
            out[i, k] = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma[k] ** 2))
    return out


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, b, n = (128, 128), 16, 19
    codec = GaussianHeatmapCodec(size)
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(b, n, 2, generator=g) * 100 + 14
    sigma = torch.linspace(1.0, 8.0, n)
    ref = loop_encode(pts, sigma, size)
    fast = codec.encode(pts, sigma)
    max_diff = float((ref - fast).abs().max())
    t_loop = best_of(lambda: loop_encode(pts, sigma, size), repeat=3)
    t_vec = best_of(lambda: codec.encode(pts, sigma), repeat=10, number=5)
    speedup = t_loop / t_vec
    print(
        f"encode {b}x{n} heatmaps {size}: loop {t_loop * 1e3:.2f} ms, vectorised {t_vec * 1e3:.3f} ms "
        f"-> {speedup:.1f}x (goal >= 20x); max |diff| {max_diff:.2e}"
    )
    gpu = {}
    if device == "cuda":
        p, s = pts.cuda(), sigma.cuda()

        def enc():
            codec.encode(p, s)
            torch.cuda.synchronize()

        gpu = {"encode_cuda_ms": best_of(enc, repeat=10, number=10) * 1e3}
        print(f"encode on CUDA: {gpu['encode_cuda_ms']:.3f} ms")
    errors = {}
    for s in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0):
        p = torch.rand(64, n, 2, generator=g, dtype=torch.float64) * (
            128 - 2 * math.ceil(2 * s)
        ) + math.ceil(2 * s)
        dec, _ = codec.decode(codec.encode(p, torch.full((n,), s, dtype=torch.float64)))
        errors[f"{s:g}"] = float((dec.double() - p).abs().max())
    worst = max(errors.values())
    print(
        "decode round trip max error (px) by sigma: "
        + ", ".join(f"{k}: {v:.2e}" for k, v in errors.items())
        + f" -> worst {worst:.2e} (goal <= 0.05)"
    )
    t_dec = best_of(lambda: codec.decode(fast), repeat=5, number=3)
    print(f"decode {b}x{n}: {t_dec * 1e3:.2f} ms")
    write_result(
        "codec",
        {
            "encode_loop_ms": t_loop * 1e3,
            "encode_vectorised_ms": t_vec * 1e3,
            "encode_speedup": speedup,
            "encode_goal_met": speedup >= 20,
            "max_abs_diff": max_diff,
            "decode_max_error_px": errors,
            "decode_goal_met": worst <= 0.05,
            "decode_ms": t_dec * 1e3,
            **gpu,
        },
    )


if __name__ == "__main__":
    main()
