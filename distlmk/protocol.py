"""The one trial <-> policy protocol: message types, spaces and named row features (a leaf module).

A trial with L landmarks sends L+1 rows per decision: one per landmark and one trial row.
Every row has the same features, so one network with shared weights acts on each landmark
(and works for any L: a policy transfers between datasets). The trial side (building rows,
rewards, applying actions) is `distlmk.control.rl`; the policy side is `distlmk.policy`; the
population's board (every member's sigma_l and validation error on l by epoch) is
`distlmk.policy.board`, held by the policy server.

One decision, two calls through the same transport:
  1. `context(BoardPost) -> BoardContext`: the trial posts the sigma it trained this epoch
     with and its validation error per landmark; the server books them on the board of its
     population (`BoardPost.board`) and answers the board features of each landmark against
     the **peers at the same epoch** (the other members that posted exactly this epoch). The
     server may wait up to `BoardPost.wait_s` until every known live member of the population
     has posted this epoch (lockstep populations compare like with like); members that ended
     (`leave`), are already past this epoch, or missed an earlier wait are not waited for.
     With `BoardPost.rule` set (landmark_pbt) the answer also carries that rule's next sigma.
  2. `step(StepRequest) -> actions [R, 2]`: the rows (own features + the board's) and the
     rewards of the previous decision; the answer is one action per row.
`end_trial(trial_id)` truncates the trial's open episodes (a restart); `leave(trial_id)` says
the trial is over (no longer waited for; its posted rows stay on the board).

Row features (OBS_DIM = 12, `Feature`):
  IS_TRIAL_ROW    1 for the trial row, 0 for landmark rows
  SIGMA_POS       log-sigma position in [sigma_min, sigma_max] -> [0, 1]
  LOG_ERR_REL     log(validation error / its value at the first decision)
  TREND           relative improvement since the previous decision
  LOG_LOSS_REL    log(train loss / train loss at the first decision)
  PROGRESS        epochs done / epoch budget
  LAST_MOVE       previous sigma move of this landmark (-1, 0, +1)
  the board (`BOARD_FEATURES`, peers at the same epoch; all 0 for a trial alone):
  ERR_VS_MEDIAN   log(error / peers' median error on l)
  ERR_VS_BEST     log(error / peers' best error on l)
  SIGMA_VS_TOP    log(sigma_l / geometric mean sigma_l of the peers in the top quantile on l)
  SIGMA_SPREAD    std of log sigma_l among the peers
  PEER_COUNT      log1p(number of peers) / log1p(PEER_COUNT_SCALE)
The trial row carries the landmark means of the same features (its error features from the
mean error). No sigma grid's answer is an input: a grid is a baseline, not context.

Action per row: MultiDiscrete([3, 2]) = (`ActionPart.MOVE`: `Move.LOWER/KEEP/RAISE`,
`ActionPart.END`: continue/end); the policy's logits are in `Logit` order. On a landmark row
`end` ends the interaction for that landmark (sigma frozen); on the trial row `end` stops the
trial. Both are honoured only when allowed (`rl.allow_stop`) and after `rl.min_progress_to_stop`.

Rewards for the previous decision (`rl.reward`), per landmark row:
  peer (default)  reward_scale * (change of log(error / peers' median error) on l between the
                  previous decision and now): the population's common learning trend cancels,
                  what is left is what this trial's decision did relative to its peers. A
                  landmark without peers at either decision falls back to the own form.
  own             reward_scale * log(previous error / error), which telescopes to
                  reward_scale * log(first error / final error).
  terminal        0 until the row's last step, then reward_scale * log(first error / error).
The trial row gets the landmark mean minus `epoch_cost` per epoch spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import gymnasium as gym
import numpy as np


class Feature(IntEnum):
    """Column of a row of the observation (see the module docstring)."""

    IS_TRIAL_ROW = 0
    SIGMA_POS = 1
    LOG_ERR_REL = 2
    TREND = 3
    LOG_LOSS_REL = 4
    PROGRESS = 5
    LAST_MOVE = 6
    ERR_VS_MEDIAN = 7
    ERR_VS_BEST = 8
    SIGMA_VS_TOP = 9
    SIGMA_SPREAD = 10
    PEER_COUNT = 11


BOARD_FEATURES = (Feature.ERR_VS_MEDIAN, Feature.ERR_VS_BEST, Feature.SIGMA_VS_TOP, Feature.SIGMA_SPREAD,
                  Feature.PEER_COUNT)  # the columns a BoardContext fills, in this order
BOARD_DIM = len(BOARD_FEATURES)
PEER_COUNT_SCALE = 64  # PEER_COUNT is 1 at 64 peers
OBS_DIM = len(Feature)
OBS_LIMIT = 10.0
OBSERVATION_SPACE = gym.spaces.Box(-OBS_LIMIT, OBS_LIMIT, (OBS_DIM,), np.float32)


class ActionPart(IntEnum):
    """Column of an action [R, 2]."""

    MOVE = 0  # a `Move`
    END = 1  # 0 continue, 1 end (landmark row: freeze its sigma; trial row: stop the trial)


class Move(IntEnum):
    LOWER = 0
    KEEP = 1
    RAISE = 2


class Logit(IntEnum):
    """The policy's action-distribution inputs, in MultiDiscrete order."""

    LOWER = 0
    KEEP = 1
    RAISE = 2
    CONTINUE = 3
    END = 4


ACTION_SPACE = gym.spaces.MultiDiscrete([len(Move), 2])
KEEP_MOVE = int(Move.KEEP)
NO_ACTION = -1  # answer for rows that wanted none (terminated)
REWARD_FORMS = ("peer", "own", "terminal")


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
class PBTRule:
    """landmark_pbt, computed on the board: per landmark, a member in the bottom `quantile` of
    error among the members at this epoch takes a random top-`quantile` member's sigma_l times
    a random factor of `perturb`, clipped to [lo, hi]; the others keep theirs."""

    quantile: float
    perturb: tuple[float, ...]
    lo: float
    hi: float
    seed: int = 0  # with (trial_id, epoch): the draw is reproducible


@dataclass
class BoardPost:
    """A member's state at one epoch, posted to its population's board."""

    board: str  # the population (one board each)
    trial_id: str
    epoch: int
    sigma: np.ndarray  # [L] the sigma trained with this epoch
    err: np.ndarray  # [L] validation error per landmark after it
    quantile: float = 0.25  # "peers that do best on l": the top quantile of peers by error on l
    wait_s: float = 0.0  # the server may wait this long for the population's live members to post this epoch
    rule: PBTRule | None = None  # landmark_pbt: also answer the rule's next sigma


@dataclass
class BoardContext:
    """The board's answer to a post: this member against its peers at the same epoch."""

    features: np.ndarray  # float32 [L, BOARD_DIM], columns in BOARD_FEATURES order
    peer_median_err: np.ndarray  # [L] peers' median error (nan without peers)
    num_peers: int
    waited_s: float = 0.0
    sigma_next: np.ndarray | None = None  # [L] landmark_pbt's answer (None without a rule)
    exploited: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [L] landmarks whose sigma was taken

    @staticmethod
    def alone(num_landmarks: int) -> BoardContext:
        """Neutral context: no peers (or no board reached)."""
        return BoardContext(np.zeros((num_landmarks, BOARD_DIM), np.float32), np.full(num_landmarks, np.nan), 0)
