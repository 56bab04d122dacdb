"""The one trial <-> policy protocol: message types, spaces and row features (a leaf module).

A trial with L landmarks sends L+1 rows per decision: one per landmark and one trial row.
Every row has the same features, so one network with shared weights acts on each landmark
(and works for any L: a policy transfers between datasets). The trial side (building rows,
rewards, applying actions) is `distlmk.control.rl`; the policy side is `distlmk.policy`.

Row features (OBS_DIM = 8):
  0 is_trial_row        1 for the trial row, 0 for landmark rows
  1 sigma_pos           log-sigma position in [sigma_min, sigma_max] -> [0, 1]
  2 log_err_rel         log(validation error / its value at the first decision)
  3 sigma_vs_reference  log(sigma / reference sigma): population context, where the population
                        (a sigma grid on training seeds) put this landmark's best sigma; the
                        starting sigma when no reference is given
  4 trend               relative improvement since the previous decision
  5 log_loss_rel        log(train loss / train loss at the first decision)
  6 progress            epochs done / epoch budget
  7 last_move           previous sigma move of this landmark (-1, 0, +1)
The trial row carries the landmark means of the same features.

Action per row: MultiDiscrete([3, 2]) = (sigma move lower/keep/raise, end). On a landmark
row `end` ends the interaction for that landmark (sigma frozen); on the trial row `end`
stops the trial. Both are honoured only when allowed (`rl.allow_stop`) and after
`rl.min_progress_to_stop`.

Rewards for the previous decision: landmark rows get `reward_scale * log(previous err / err)`;
summed over an episode this telescopes to `reward_scale * log(first err / final err)`, a
terminal reward on the final validation error that still arrives step by step. The trial
row gets the landmark mean minus `epoch_cost` per epoch spent.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

OBS_DIM = 8
OBS_LIMIT = 10.0
OBSERVATION_SPACE = gym.spaces.Box(-OBS_LIMIT, OBS_LIMIT, (OBS_DIM,), np.float32)
ACTION_SPACE = gym.spaces.MultiDiscrete([3, 2])
KEEP_MOVE = 1  # action[0]: 0 lower, 1 keep, 2 raise
NO_ACTION = -1  # answer for rows that wanted none (terminated)


@dataclass
class StepRequest:
    """One trial's message to the policy for one decision."""

    trial_id: str
    rows: np.ndarray  # int [R] row ids (0..L-1 landmarks, L the trial row)
    obs: np.ndarray  # float32 [R, OBS_DIM]
    rewards: np.ndarray | None  # float32 [R] reward for the previous action, None on the first call
    terminated: np.ndarray  # bool [R] rows whose episode ends here (no action wanted)
    truncated: bool = False  # the trial's budget is over: every row's episode is cut here
