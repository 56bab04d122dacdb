"""What crosses between a trial and the central policy: observation rows, rewards, actions.

A trial with L landmarks sends L+1 rows per decision: one per landmark and one trial row.
Every row has the same features, so one network with shared weights acts on each
landmark (and works for any L: a policy transfers between datasets).

Row features (OBS_DIM = 8):
  0 is_trial_row        1 for the trial row, 0 for landmark rows
  1 sigma_pos           log-sigma position in [sigma_min, sigma_max] -> [0, 1]
  2 log_err_rel         log(err / err at the first decision)
  3 err_level           log1p(err as % of the image diagonal): how hard this landmark is
  4 trend               relative improvement since the previous decision
  5 log_loss_rel        log(train loss / train loss at the first decision)
  6 progress            epochs done / epoch budget
  7 last_move           previous sigma move of this landmark (-1, 0, +1)
The trial row carries the landmark means of the same features.

Action per row: MultiDiscrete([3, 2]) = (sigma move lower/keep/raise, end). On a landmark
row `end` ends the interaction for that landmark (sigma frozen); on the trial row `end`
stops the trial. Both are honoured only after `min_progress_to_stop`.

Reward for the previous decision: landmark rows get REWARD_SCALE * log(previous err / err),
a relative improvement, so a 1 % gain late in training counts as much as early on and the
untrained network's first huge drop does not drown every later step; the trial row gets
the mean of those minus `epoch_cost` per epoch spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from distlmk.config import SigmaConfig

OBS_DIM = 8
REWARD_SCALE = 10.0
OBSERVATION_SPACE = gym.spaces.Box(-10.0, 10.0, (OBS_DIM,), np.float32)
ACTION_SPACE = gym.spaces.MultiDiscrete([3, 2])


@dataclass
class StepRequest:
    """One trial's message to the policy for one decision."""

    trial_id: str
    rows: np.ndarray  # int [R] row ids (0..L-1 landmarks, L the trial row)
    obs: np.ndarray  # float32 [R, OBS_DIM]
    rewards: np.ndarray | None  # float32 [R] reward for the previous action, None on the first call
    terminated: np.ndarray  # bool [R] rows whose episode ends here (no action wanted)
    truncated: bool = False  # the trial's budget is over: every row's episode is cut here


@dataclass
class TrialProtocol:
    """Trial-side state of the RL interaction: builds rows and rewards, applies actions."""

    num_landmarks: int
    sigma_cfg: SigmaConfig
    first_err: np.ndarray | None = None
    first_loss: np.ndarray | None = None
    prev_err: np.ndarray | None = None
    prev_epoch: int = 0
    last_move: np.ndarray = field(default=None)  # type: ignore[assignment]
    ended: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.last_move is None:
            self.last_move = np.zeros(self.num_landmarks)
        if self.ended is None:
            self.ended = np.zeros(self.num_landmarks, bool)

    @property
    def trial_row(self) -> int:
        return self.num_landmarks

    def observation(
        self,
        sigma: np.ndarray,
        err: np.ndarray,
        loss: np.ndarray,
        epoch: int,
        epochs: int,
        diag_mm: float,
    ) -> np.ndarray:
        """All L+1 rows [L+1, OBS_DIM] for the current state."""
        if self.first_err is None:
            self.first_err = np.maximum(err, 1e-6).copy()
            self.first_loss = np.maximum(loss, 1e-12).copy()
        prev = self.prev_err if self.prev_err is not None else err
        lo, hi = np.log(self.sigma_cfg.min), np.log(self.sigma_cfg.max)
        lm = np.empty((self.num_landmarks, OBS_DIM), np.float32)
        lm[:, 0] = 0.0
        lm[:, 1] = (np.log(sigma) - lo) / max(hi - lo, 1e-9)
        lm[:, 2] = np.log(np.maximum(err, 1e-6) / self.first_err)
        lm[:, 3] = np.log1p(100.0 * err / diag_mm)
        lm[:, 4] = np.clip((prev - err) / np.maximum(prev, 1e-6), -1, 1)
        lm[:, 5] = np.log(np.maximum(loss, 1e-12) / self.first_loss)
        lm[:, 6] = epoch / max(epochs, 1)
        lm[:, 7] = self.last_move
        trial = lm.mean(axis=0, keepdims=True)
        trial[0, 0] = 1.0
        trial[0, 2] = np.log(max(err.mean(), 1e-6) / self.first_err.mean())
        trial[0, 4] = np.clip((prev.mean() - err.mean()) / max(prev.mean(), 1e-6), -1, 1)
        trial[0, 7] = 0.0
        return np.clip(np.concatenate([lm, trial]), -10, 10).astype(np.float32)

    def rewards(self, err: np.ndarray, epoch: int, cost: float) -> np.ndarray:
        """Rewards [L+1] for the previous decision (landmark rows, then the trial row)."""
        assert self.prev_err is not None and self.first_err is not None
        lm = REWARD_SCALE * np.log(np.maximum(self.prev_err, 1e-6) / np.maximum(err, 1e-6))
        trial = lm.mean() - cost * (epoch - self.prev_epoch)
        return np.append(lm, trial).astype(np.float32)

    def active_rows(self) -> np.ndarray:
        return np.append(np.flatnonzero(~self.ended), self.trial_row)

    def commit(self, err: np.ndarray, epoch: int) -> None:
        self.prev_err = err.copy()
        self.prev_epoch = epoch

    def apply(
        self, sigma: np.ndarray, rows: np.ndarray, actions: np.ndarray, progress: float
    ) -> tuple[np.ndarray, bool, np.ndarray]:
        """Apply actions [R, 2] of `rows` to sigma. Returns (new sigma, stop, newly ended mask)."""
        sigma = sigma.copy()
        may_end = progress >= self.sigma_cfg.rl.min_progress_to_stop
        newly_ended = np.zeros(self.num_landmarks, bool)
        stop = False
        self.last_move[:] = 0
        for row, (move, end) in zip(rows, actions, strict=True):
            if row == self.trial_row:
                stop = bool(end) and may_end
                continue
            m = int(move) - 1
            sigma[row] = np.clip(
                sigma[row] * self.sigma_cfg.rl.step_factor**m,
                self.sigma_cfg.min,
                self.sigma_cfg.max,
            )
            self.last_move[row] = m
            if end and may_end:
                newly_ended[row] = True
        return sigma, stop, newly_ended

    def state_dict(self) -> dict:
        def arr(a: np.ndarray | None) -> list | None:
            return None if a is None else a.tolist()

        return {
            "first_err": arr(self.first_err),
            "first_loss": arr(self.first_loss),
            "prev_err": arr(self.prev_err),
            "prev_epoch": self.prev_epoch,
            "last_move": arr(self.last_move),
            "ended": arr(self.ended),
        }

    def load_state_dict(self, s: dict) -> None:
        def arr(a: list | None, dtype: type = np.float64) -> np.ndarray | None:
            return None if a is None else np.asarray(a, dtype)

        self.first_err, self.first_loss, self.prev_err = (
            arr(s["first_err"]),
            arr(s["first_loss"]),
            arr(s["prev_err"]),
        )
        self.prev_epoch = int(s["prev_epoch"])
        self.last_move = arr(s["last_move"])
        self.ended = arr(s["ended"], bool)
