"""Heatmap codec: Gaussian targets with per-landmark sigma, sub-pixel decoding."""

from distlmk.heatmap.codec import GaussianHeatmapCodec

__all__ = ["GaussianHeatmapCodec"]
