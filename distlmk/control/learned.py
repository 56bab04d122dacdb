"""learned: sigma as a trainable parameter with an L2 regulariser (Payer et al., SCN).

Targets are area-normalised (peak scaled by (sigma0/sigma)^2), so a larger sigma lowers
the loss; the regulariser `learned_reg * mean(sigma^2)` pulls it back. Each landmark
settles where its own fit error balances the penalty: ambiguous landmarks grow wider.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from distlmk.config import SigmaConfig
from distlmk.control.base import SigmaController


class LearnedSigma(SigmaController):
    name = "learned"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int):
        super().__init__(cfg, num_landmarks)
        self.log_sigma = torch.nn.Parameter(torch.full((num_landmarks,), math.log(cfg.init)))

    def sigma_values(self) -> np.ndarray:
        return self.sigma().detach().cpu().numpy().astype(np.float64)

    def sigma(self, device: torch.device | str = "cpu") -> torch.Tensor:
        lo, hi = math.log(self.cfg.min), math.log(self.cfg.max)
        return torch.exp(self.log_sigma.clamp(lo, hi)).to(device)

    def target_gain(self, sigma: torch.Tensor) -> torch.Tensor:
        return ((self.cfg.init / sigma) ** 2)[
            :, None, None
        ]  # [L, 1, 1]: broadcasts over [B, L, H, W]

    def loss_weights(self, sigma: torch.Tensor) -> float:
        """Area-normalised targets (`target_gain`) already balance the landmarks."""
        return 1.0

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.log_sigma]

    def penalty(self) -> torch.Tensor:
        return self.cfg.learned_reg * (self.sigma(self.log_sigma.device) ** 2).mean()

    def state_dict(self) -> dict:
        return {"log_sigma": self.log_sigma.detach().cpu().tolist()}

    def _apply_sigma(self, values: np.ndarray) -> None:
        with torch.no_grad():
            self.log_sigma.copy_(torch.as_tensor(np.log(values), dtype=self.log_sigma.dtype))

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.log_sigma.copy_(
                torch.as_tensor(np.asarray(state["log_sigma"]), dtype=self.log_sigma.dtype)
            )
