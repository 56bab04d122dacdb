"""A cost model standing in for a landmark network's validation error (numpy only, a leaf).

Why: the central policy must be tested for learning and measured at 256-1,024 trials on
one machine; a real network per trial would make both impossible. Each simulated landmark
has a hidden ambiguity a_l. Its best sigma grows with a_l, and so does its error floor.
Per epoch the validation error moves toward a floor that rises as sigma leaves that
landmark's best value, and falls fastest when sigma is near it. The trainer around it
(same controllers, records and RL client as the network) is `distlmk.sim.trainer`.
"""

from __future__ import annotations

import math

import numpy as np

from distlmk.schema import SDR_THRESHOLDS_MM


class LandmarkCostModel:
    """Per-landmark validation error dynamics as a function of sigma (vectorised over landmarks)."""

    def __init__(self, num_landmarks: int, seed: int, sigma_min: float, sigma_max: float):
        self.rng = np.random.default_rng([seed, 7919])
        self.ambiguity = self.rng.uniform(0, 1, num_landmarks)
        lo, hi = math.log(sigma_min), math.log(sigma_max)
        self.log_target = lo + (0.15 + 0.7 * self.ambiguity) * (hi - lo)
        self.floor = 0.8 + 3.0 * self.ambiguity  # mm
        self.err = self.rng.uniform(8.0, 12.0, num_landmarks)

    def step(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance one epoch with per-landmark sigma; returns (val error mm [L], train loss [L])."""
        d = (np.log(sigma) - self.log_target) / 0.4
        speed = 0.1 + 0.25 * np.exp(-0.5 * d**2)
        floor = self.floor * (1 + 0.25 * d**2)
        noise = self.rng.normal(0, 0.01, self.err.shape) * self.err
        self.err = np.maximum(floor + (self.err - floor) * (1 - speed) + noise, 0.05)
        loss = self.err * sigma / (1 + sigma) * 0.1
        return self.err.copy(), loss

    def state_dict(self) -> dict:
        return {"err": self.err.tolist(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict) -> None:
        self.err = np.asarray(s["err"])
        self.rng.bit_generator.state = s["rng"]


def rayleigh_sdr(mean_err: np.ndarray) -> dict:
    """SDR (%) if each landmark's radial error were Rayleigh-distributed with this mean."""
    s = np.maximum(mean_err, 1e-9) / math.sqrt(math.pi / 2)
    return {
        f"{t:.1f}": float(100 * np.mean(1 - np.exp(-(t**2) / (2 * s**2))))
        for t in SDR_THRESHOLDS_MM
    }
