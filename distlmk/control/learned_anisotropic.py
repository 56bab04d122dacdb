"""learned_anisotropic: a trainable Gaussian covariance per landmark (Payer et al., SCN).

The Spatial Configuration Net's learned target width, with the anisotropic extension
(Payer et al. 2019; Thaler et al. 2021): landmark l's target is a rotated Gaussian with
parameters log sigma_x, log sigma_y and angle, trained with the network. Targets are
area-normalised like `learned` (peak scaled by sigma0^2 / (sigma_x sigma_y)), so a wider
or longer Gaussian lowers the loss; the regulariser `learned_reg * mean((sigma_x^2 +
sigma_y^2) / 2)` pulls it back and reduces to `learned`'s `learned_reg * mean(sigma^2)`
when sigma_x = sigma_y. For a fixed area it is smallest for a round Gaussian, so a
landmark only grows elongated where its fit error is itself elongated (along a contour).

`sigma()` is the equal-area isotropic width sqrt(sigma_x sigma_y) (what records call
sigma); `cov_values()` gives [L, 3] = (sigma_x, sigma_y, angle) in heatmap pixels and
radians, canonical: sigma_x >= sigma_y and angle in [0, pi) is the long axis's direction
from the image x axis towards +y (y points down). On the synthetic set it recovers each
landmark's annotation-noise direction (e.g. gonion's 45 degrees, the lips' vertical axis).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from distlmk.config import SigmaConfig
from distlmk.control.base import SigmaController


class LearnedAnisotropicSigma(SigmaController):
    name = "learned_anisotropic"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int):
        super().__init__(cfg, num_landmarks)
        self.log_sigma_xy = torch.nn.Parameter(torch.full((num_landmarks, 2), math.log(cfg.init)))
        self.angle = torch.nn.Parameter(torch.zeros(num_landmarks))

    def _sxy(self) -> torch.Tensor:
        lo, hi = math.log(self.cfg.min), math.log(self.cfg.max)
        return torch.exp(self.log_sigma_xy.clamp(lo, hi))  # [L, 2]

    def cov(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """[L, 3] (sigma_x, sigma_y, angle), differentiable, in heatmap pixels and radians."""
        return torch.cat([self._sxy(), self.angle[:, None]], dim=1).to(device)

    def sigma_values(self) -> np.ndarray:
        return self.sigma().detach().cpu().numpy().astype(np.float64)

    def sigma(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return self._sxy().prod(dim=1).sqrt().to(device)

    def cov_values(self) -> np.ndarray:
        """[L, 3] canonical: sigma_x >= sigma_y (the long axis first), angle of the long axis in [0, pi)."""
        c = self.cov().detach().cpu().numpy().astype(np.float64)
        swap = c[:, 0] < c[:, 1]
        c[swap, 0], c[swap, 1] = c[swap, 1], c[swap, 0].copy()
        c[swap, 2] += math.pi / 2
        c[:, 2] = np.mod(c[:, 2], math.pi)
        return c

    def targets(self, codec, points: torch.Tensor) -> torch.Tensor:
        cov = self.cov(points.device)
        gain = self.cfg.init**2 / (cov[:, 0] * cov[:, 1])
        return codec.encode_anisotropic(points, cov) * gain[:, None, None]

    def loss_weights(self, sigma: torch.Tensor) -> float:
        """Area-normalised targets already balance the landmarks (as in `learned`)."""
        return 1.0

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.log_sigma_xy, self.angle]

    def penalty(self) -> torch.Tensor:
        return self.cfg.learned_reg * (self._sxy() ** 2).mean()

    def state_dict(self) -> dict:
        return {
            "log_sigma_xy": self.log_sigma_xy.detach().cpu().tolist(),
            "angle": self.angle.detach().cpu().tolist(),
        }

    def _apply_sigma(self, values: np.ndarray) -> None:
        """Isotropic again: both axes at the given sigma."""
        with torch.no_grad():
            self.log_sigma_xy.copy_(torch.as_tensor(np.log(values), dtype=torch.float32)[:, None].expand(-1, 2))

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.log_sigma_xy.copy_(torch.as_tensor(np.asarray(state["log_sigma_xy"]), dtype=torch.float32))
            self.angle.copy_(torch.as_tensor(np.asarray(state["angle"]), dtype=torch.float32))
