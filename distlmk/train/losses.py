"""Heatmap losses, returned per landmark so controllers and the policy can read them."""

from __future__ import annotations

import math

import torch


def mse_per_landmark(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over pixels, mean over the batch: [B,L,H,W] -> [L]."""
    return ((pred - target) ** 2).sum(dim=(2, 3)).mean(dim=0)


def adaptive_wing_per_landmark(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 2.1,
    omega: float = 14.0,
    epsilon: float = 1.0,
    theta: float = 0.5,
) -> torch.Tensor:
    """Adaptive Wing loss (Wang et al. 2019; mmpose defaults), mean over pixels and batch -> [L]."""
    y, y_hat = target, pred
    delta = (y - y_hat).abs()
    p = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** p)) * p * ((theta / epsilon) ** (p - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** p)
    loss = torch.where(delta < theta, omega * torch.log1p((delta / epsilon) ** p), a * delta - c)
    return loss.mean(dim=(2, 3)).mean(dim=0) * math.prod(pred.shape[2:]) / 100.0


LOSSES = {"mse": mse_per_landmark, "awing": adaptive_wing_per_landmark}
