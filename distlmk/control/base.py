"""The one interface every sigma strategy implements; the trainer knows nothing else.

Each epoch the trainer hands the controller an `EpochFeedback`; the controller may change
its per-landmark sigmas and may ask the trial to stop. `sigma()` is what the heatmap
targets use; `learned` returns a trainable tensor, the others constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is made: a simulated trial never needs it
    import torch

from distlmk.config import SigmaConfig


@dataclass
class EpochFeedback:
    epoch: int  # epochs completed so far (1 after the first epoch)
    epochs: int  # the epoch budget
    val_error_mm: np.ndarray  # [L] validation MRE per landmark
    train_loss: np.ndarray  # [L] mean heatmap loss per landmark over the epoch


@dataclass
class Decision:
    stop: bool = False  # end this trial now
    reward: float | None = None  # the trial's reward for the previous decision (rl only)
    ended: np.ndarray | None = None  # [L] bool: landmarks whose sigma is frozen (rl only)
    info: dict = field(default_factory=dict)


class SigmaController:
    """Base: constant sigma. Subclasses override what they change."""

    name = "fixed"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int):
        self.cfg = cfg
        self.num_landmarks = num_landmarks
        if cfg.per_landmark:
            if len(cfg.per_landmark) != num_landmarks:
                raise ValueError(
                    f"sigma.per_landmark: {len(cfg.per_landmark)} values for {num_landmarks} landmarks; "
                    "give one sigma per landmark or leave it empty"
                )
            self._sigma = np.asarray(cfg.per_landmark, dtype=np.float64).copy()
        else:
            self._sigma = np.full(num_landmarks, float(cfg.init))

    def sigma(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Per-landmark sigma [L] in heatmap pixels."""
        import torch

        return torch.as_tensor(self._sigma, dtype=torch.float32, device=device)

    def sigma_values(self) -> np.ndarray:
        """Per-landmark sigma [L] as numpy (controllers whose sigma is a tensor override it)."""
        return np.asarray(self._sigma, dtype=np.float64).copy()

    def target_gain(self, sigma: torch.Tensor) -> torch.Tensor | float:
        """Factor on the peak-1 targets [B, L, H, W]: a scalar or [L, 1, 1] (1 except for `learned`)."""
        return 1.0

    def loss_weights(self, sigma: torch.Tensor) -> torch.Tensor | float:
        """Per-landmark loss weights [L]: (rms sigma / sigma_l)^2, so landmarks with wide targets
        (whose peak-1 Gaussians carry ~sigma^2 times more energy) do not drown narrow ones.
        All ones when every landmark has the same sigma."""
        s2 = sigma.detach() ** 2
        return s2.mean() / s2

    def targets(self, codec, points: torch.Tensor) -> torch.Tensor:
        """Training targets [B, L, H, W] for `points` [B, L, 2] in input pixels (the codec maps them)."""
        sigma = self.sigma(points.device)
        return codec.encode(points, sigma) * self.target_gain(sigma)

    def cov_values(self) -> np.ndarray | None:
        """[L, 3] (sigma_x, sigma_y, angle rad) for anisotropic controllers; None when isotropic."""
        return None

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def penalty(self) -> torch.Tensor | float:
        return 0.0

    def observe(self, fb: EpochFeedback) -> Decision:
        return Decision()

    def state_dict(self) -> dict:
        return {"sigma": self._sigma.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self._sigma = np.asarray(state["sigma"], dtype=np.float64)

    def set_sigma(self, values) -> None:
        """Replace the per-landmark sigmas [L] (heatmap pixels), e.g. a PBT member's own mutated
        sigma after it took a donor's checkpoint; the controller carries on from there."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.num_landmarks,):
            raise ValueError(f"set_sigma: {values.size} values for {self.num_landmarks} landmarks")
        self._apply_sigma(values)

    def _apply_sigma(self, values: np.ndarray) -> None:
        self._sigma = values.copy()

    def close(self, truncated: bool = True) -> None:
        """The trial is over (budget reached or stopped); release external state."""
