"""schedule: a coarse-to-fine sigma curriculum, the same for every landmark.

Sigma goes from `schedule_start` at the first epoch to `schedule_end` at the last, along
`schedule_shape` (linear, cosine or geometric): wide targets first, so every landmark is
found quickly, then narrow ones for precision. A hand-made curriculum a user would try;
start, end and shape are chosen on validation like a fixed sigma. `step` switches once, at
the middle epoch: it measures how a network answers a changed sigma (the population
simulator's `memory`, `benchmarks/sigma_switch.py`).
"""

from __future__ import annotations

import math

import numpy as np

from distlmk.control.base import Decision, EpochFeedback, SigmaController


def scheduled_sigma(start: float, end: float, shape: str, progress: float) -> float:
    """Sigma at `progress` in [0, 1] (0: first epoch, 1: last epoch)."""
    p = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return start + (end - start) * p
    if shape == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * p))
    if shape == "geometric":
        return start * (end / start) ** p
    if shape == "step":
        return start if p < 0.5 else end
    raise ValueError(f"sigma.schedule_shape: unknown shape {shape!r}")


class ScheduleSigma(SigmaController):
    name = "schedule"

    def __init__(self, cfg, num_landmarks: int):
        super().__init__(cfg, num_landmarks)
        self._sigma = np.full(num_landmarks, float(cfg.schedule_start))

    def observe(self, fb: EpochFeedback) -> Decision:
        c = self.cfg
        progress = fb.epoch / max(fb.epochs - 1, 1)  # sigma for the next epoch (index fb.epoch)
        self._sigma[:] = scheduled_sigma(c.schedule_start, c.schedule_end, c.schedule_shape, progress)
        return Decision()
