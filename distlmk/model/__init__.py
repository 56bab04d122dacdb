"""Heatmap regression networks."""

from distlmk.model.unet import UNet, build_model, heatmap_size, resolve_device

__all__ = ["UNet", "build_model", "heatmap_size", "resolve_device"]
