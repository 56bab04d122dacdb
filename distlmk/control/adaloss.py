"""adaloss: shrink each landmark's sigma as its loss variance falls (Teixeira et al. 2019).

Per landmark, the coefficient of variation of the last `adaloss_window` epoch losses is
compared with the window before; when it fell (training on this target has settled),
sigma shrinks by `adaloss_shrink` (not below `min`) and that landmark's history restarts,
since a new sigma changes the loss scale.
"""

from __future__ import annotations

import numpy as np

from distlmk.config import SigmaConfig
from distlmk.control.base import Decision, EpochFeedback, SigmaController


class AdaLossSigma(SigmaController):
    name = "adaloss"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int):
        super().__init__(cfg, num_landmarks)
        self.history: list[list[float]] = [[] for _ in range(num_landmarks)]

    def observe(self, fb: EpochFeedback) -> Decision:
        w = self.cfg.adaloss_window
        for k, loss in enumerate(fb.train_loss):
            h = self.history[k]
            h.append(float(loss))
            if len(h) < 2 * w:
                continue
            prev, now = np.asarray(h[-2 * w : -w]), np.asarray(h[-w:])
            cv_prev = prev.std() / max(prev.mean(), 1e-12)
            cv_now = now.std() / max(now.mean(), 1e-12)
            if cv_now < cv_prev and self._sigma[k] > self.cfg.min:
                self._sigma[k] = max(self.cfg.min, self._sigma[k] * self.cfg.adaloss_shrink)
                self.history[k] = []
        return Decision()

    def state_dict(self) -> dict:
        return {"sigma": self._sigma.tolist(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = [list(h) for h in state["history"]]
