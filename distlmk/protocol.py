"""The one trial <-> policy protocol: message types, spaces and named row features (a leaf module).

A trial with L landmarks sends L+1 rows per decision: one per landmark and one trial row.
Every row has the same features, so one network with shared weights acts on each landmark
(and works for any L: a policy transfers between datasets). The trial side (building rows,
rewards, applying actions) is `distlmk.control.rl`; the policy side is `distlmk.policy`; the
population's board (every member's sigma_l and validation error on l by epoch) is
`distlmk.policy.board`, held by the policy server.

One rl decision is one call, `decide(DecisionRequest) -> Decided`:
  - the post (`BoardPost`): the sigma the trial trained this epoch with and its validation
    error per landmark. The server books them on the board of its population
    (`BoardPost.board`) and computes the board features of each landmark against the **peers
    at the same epoch** (the other members that posted exactly this epoch). It may wait up to
    `BoardPost.wait_s` until every known live member of the population has posted this epoch
    (lockstep populations compare like with like), and every member the search's plan announced
    (`expect`) that has not posted yet; members that ended (`leave`), are already past this epoch,
    or missed an earlier wait are not waited for.
  - the step: the trial's rows with their own features (board columns 0) and the own-form
    rewards of its previous decision. The server completes it from the context
    (`DecisionRequest.complete`: the board columns, and the peer reward from the peers'
    median) and answers one action per row, with the context (`Decided`).
The two halves are also calls of their own: `context(BoardPost) -> BoardContext` (landmark_pbt
asks only this: with `BoardPost.rule` set the answer carries that rule's next sigma) and
`step(StepRequest) -> actions [R, 2]` (a stop's terminal step, within the same decision).
`end_trial(trial_id)` truncates the trial's open episodes (a restart); `leave(trial_id)` says
the trial is over (no longer waited for; its posted rows stay on the board).

Row features (OBS_DIM = 12, `Feature`):
  IS_TRIAL_ROW    1 for the trial row, 0 for landmark rows
  SIGMA_POS       log-sigma position in [sigma_min, sigma_max] -> [0, 1]
  LOG_ERR_REL     log(validation error / its value at the first decision)
  TREND           relative improvement since the previous decision
  LOG_LOSS_REL    log(train loss / train loss at the first decision)
  PROGRESS        epochs done / epoch budget
  LAST_MOVE       previous sigma move of this landmark (-1, 0, +1; ADOPT: the direction it went)
  the board (`BOARD_FEATURES`, peers at the same epoch; all 0 for a trial alone):
  ERR_VS_MEDIAN   log(error / peers' median error on l)
  ERR_VS_BEST     log(error / peers' best error on l)
  SIGMA_VS_TOP    log(sigma_l / geometric mean sigma_l of the peers in the top quantile on l)
  SIGMA_SPREAD    std of log sigma_l among the peers
  PEER_COUNT      log1p(number of peers) / log1p(PEER_COUNT_SCALE)
The trial row carries the landmark means of the same features (its error features from the
mean error). No sigma grid's answer is an input: a grid is a baseline, not context.

Action per row: MultiDiscrete([4, 2]) = (`ActionPart.MOVE`: `Move.LOWER/KEEP/RAISE/ADOPT`,
`ActionPart.END`: continue/end); the policy's logits are in `Logit` order. LOWER and RAISE step
sigma_l by `rl.step_factor`; ADOPT takes the sigma_l of one of the peers that do best on l
(`BoardContext.donor_sigma`: a member of the top quantile drawn per member, epoch and landmark),
so copying a peer, the landmark_pbt rule's exploit, is one action the policy can learn when to
take. A random donor, not the top quantile's mean, keeps a population that adopts spread over
the good sigmas instead of herding onto one (measured in the simulators: issue 15's note). On a landmark row
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

import dataclasses
from dataclasses import dataclass
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
_BOARD_COLS = slice(int(BOARD_FEATURES[0]), int(BOARD_FEATURES[-1]) + 1)  # fill_board writes them as one block
if [int(f) for f in BOARD_FEATURES] != list(range(_BOARD_COLS.start, _BOARD_COLS.stop)):
    raise ImportError("protocol: BOARD_FEATURES must be contiguous Feature columns, in order")
PEER_COUNT_SCALE = 64  # PEER_COUNT is 1 at 64 peers
OBS_DIM = len(Feature)
OBS_LIMIT = 10.0
OBSERVATION_SPACE = gym.spaces.Box(-OBS_LIMIT, OBS_LIMIT, (OBS_DIM,), np.float32)


class ActionPart(IntEnum):
    """Column of an action [R, 2]."""

    MOVE = 0  # a `Move`
    END = 1  # 0 continue, 1 end (landmark row: freeze its sigma; trial row: stop the trial)


class Move(IntEnum):
    LOWER = 0  # sigma_l / step_factor
    KEEP = 1
    RAISE = 2  # sigma_l * step_factor
    ADOPT = 3  # sigma_l -> a top peer's sigma_l (BoardContext.donor_sigma); alone: keep


class Logit(IntEnum):
    """The policy's action-distribution inputs, in MultiDiscrete order."""

    LOWER = 0
    KEEP = 1
    RAISE = 2
    ADOPT = 3
    CONTINUE = 4
    END = 5


ACTION_SPACE = gym.spaces.MultiDiscrete([len(Move), 2])
KEEP_MOVE = int(Move.KEEP)
NO_ACTION = -1  # answer for rows that wanted none (terminated)
REWARD_FORMS = ("peer", "own", "terminal")


class Wire:
    """A protocol message crosses Ray as one flat tuple of plain values and raw array bytes, not as
    pickled dataclasses and numpy arrays: pickling a small array costs ~10 us and every class
    reference more, while a decision carries ~8 arrays in 3 classes (see
    `benchmarks/policy_server.py`). Arrays come back as writable copies."""

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        _WIRE_TYPES[cls.__name__] = cls

    def __reduce__(self):
        return _from_wire, (_to_wire(self),)


_WIRE_TYPES: dict[str, type] = {}
_FIELDS: dict[type, list[str]] = {}


def _to_wire(msg: Wire) -> tuple:
    """(class name, array fields mask, nested message fields mask, values)."""
    cls = type(msg)
    names = _FIELDS.get(cls) or _FIELDS.setdefault(cls, [f.name for f in dataclasses.fields(msg)])
    values, arrays, nested = [], 0, 0
    for i, name in enumerate(names):
        v = getattr(msg, name)
        if isinstance(v, np.ndarray):
            arrays |= 1 << i
            v = (v.dtype.str, v.shape, v.tobytes())
        elif isinstance(v, Wire):
            nested |= 1 << i
            v = _to_wire(v)
        values.append(v)
    return cls.__name__, arrays, nested, tuple(values)


def _from_wire(wire: tuple):
    name, arrays, nested, values = wire
    return _WIRE_TYPES[name](*(
        np.frombuffer(v[2], dtype=v[0]).reshape(v[1]).copy() if arrays >> i & 1
        else _from_wire(v) if nested >> i & 1 else v
        for i, v in enumerate(values)
    ))


@dataclass
class StepRequest(Wire):
    """One trial's message to the policy for one decision."""

    trial_id: str
    rows: np.ndarray  # int [R] row ids (0..L-1 landmarks, L the trial row)
    obs: np.ndarray  # float32 [R, OBS_DIM]
    rewards: np.ndarray | None  # float32 [R] reward for the previous action, None on the first call
    terminated: np.ndarray  # bool [R] rows whose episode ends here (no action wanted)
    truncated: bool = False  # the trial's budget is over: every row's episode is cut here


@dataclass
class PBTRule(Wire):
    """landmark_pbt, computed on the board: per landmark, a member in the bottom `quantile` of
    error among the members at this epoch takes a random top-`quantile` member's sigma_l times
    a random factor of `perturb`, clipped to [lo, hi]; the others keep theirs."""

    quantile: float
    perturb: tuple[float, ...]
    lo: float
    hi: float
    seed: int = 0  # with (BoardPost.member, epoch): the draw is reproducible


@dataclass
class BoardPost(Wire):
    """A member's state at one epoch, posted to its population's board."""

    board: str  # the population (one board each)
    trial_id: str
    epoch: int
    sigma: np.ndarray  # [L] the sigma trained with this epoch
    err: np.ndarray  # [L] validation error per landmark after it
    quantile: float = 0.25  # "peers that do best on l": the top quantile of peers by error on l
    wait_s: float = 0.0  # the server may wait this long for the population's live members to post this epoch
    rule: PBTRule | None = None  # landmark_pbt: also answer the rule's next sigma
    member: int | None = None  # the member's place in its population: keys the board's draws (None: the trial id)


@dataclass
class BoardContext(Wire):
    """The board's answer to a post: this member against its peers at the same epoch."""

    features: np.ndarray  # float32 [L, BOARD_DIM], columns in BOARD_FEATURES order
    peer_median_err: np.ndarray  # [L] peers' median error (nan without peers)
    num_peers: int
    waited_s: float = 0.0
    sigma_next: np.ndarray | None = None  # [L] landmark_pbt's answer (None without a rule)
    exploited: np.ndarray | None = None  # [L] landmarks whose sigma was taken (with a rule)
    donor_sigma: np.ndarray | None = None  # [L] ADOPT's target: one top peer's sigma_l (own sigma without peers)

    @staticmethod
    def alone(num_landmarks: int) -> BoardContext:
        """Neutral context: no peers (or no board reached)."""
        return BoardContext(np.zeros((num_landmarks, BOARD_DIM), np.float32), np.full(num_landmarks, np.nan), 0)


def log_ratio_to_peers(err: np.ndarray, peer_median: np.ndarray | None) -> np.ndarray:
    """log(err / peers' median err) per landmark [L]; nan where there are no peers."""
    if peer_median is None:
        return np.full(len(err), np.nan)
    return np.log(np.maximum(err, 1e-6) / np.maximum(peer_median, 1e-6))


def fill_board(obs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Rows [L+1, OBS_DIM] (landmarks, then the trial row) with the board's columns set from
    `features` [L, BOARD_DIM]; the trial row takes their landmark means. A new array (the own
    columns arrive clipped; only the board's block is written and clipped, in place)."""
    out = np.array(obs, np.float32)
    board = out[:, _BOARD_COLS]  # a view
    board[:-1] = features
    board[-1] = np.sum(features, axis=0, dtype=np.float64) / len(features) if len(features) else 0.0
    np.clip(board, -OBS_LIMIT, OBS_LIMIT, out=board)
    return out


@dataclass
class PeerReward(Wire):
    """The peer form's pending half: what the peers' median at this epoch turns into the landmark
    rewards (see the module docstring); a landmark without peers now or then keeps its own reward."""

    prev_rel: np.ndarray  # [L] log(err / peers' median err) at the previous decision (nan: no peers)
    scale: float  # reward_scale
    trial_cost: float  # epoch_cost * epochs since the previous decision

    def rewards(self, own: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """[L+1] from the own-form rewards `own` [L+1] and this epoch's log(err / peers' median) [L]
        (`log_ratio_to_peers`)."""
        peer = self.scale * (self.prev_rel - rel)
        out = np.empty(len(own), np.float32)
        out[:-1] = np.where(np.isfinite(peer), peer, own[:-1])
        out[-1] = out[:-1].sum(dtype=np.float64) / max(len(peer), 1) - self.trial_cost
        return out


@dataclass
class DecisionRequest(Wire):
    """One rl decision in one call: the board post and the step the context completes."""

    post: BoardPost
    rows: np.ndarray  # int [R] rows that want this step (0..L-1 landmarks, L the trial row)
    obs: np.ndarray  # float32 [L+1, OBS_DIM] every row's own features; board columns filled by `complete`
    rewards: np.ndarray | None  # float32 [L+1] own-form rewards of the previous decision; None on the first
    terminated: np.ndarray  # bool [R]
    truncated: bool = False
    peer: PeerReward | None = None  # the peer form: rewards finished from the context

    def rewards_given(self, ctx: BoardContext | None) -> np.ndarray | None:
        """The previous decision's rewards [L+1] once the board's context is known (None, or no
        peers: the own form, which is what the peer form falls back to on every landmark)."""
        if self.rewards is None or self.peer is None or ctx is None or not ctx.num_peers:
            return self.rewards
        return self.peer.rewards(self.rewards, log_ratio_to_peers(self.post.err, ctx.peer_median_err))

    def complete(self, ctx: BoardContext | None) -> StepRequest:
        """The step this decision sends, its board columns and rewards taken from `ctx` (None: alone).
        On the server's hot path: a handful of numpy calls, no copy of rows that are all wanted."""
        alone = ctx is None or not ctx.num_peers  # alone: the board's columns stay 0
        obs = self.obs.copy() if alone else fill_board(self.obs, ctx.features)
        rewards = self.rewards_given(ctx)
        if len(self.rows) < len(obs):  # some landmarks ended: their rows are not sent
            obs, rewards = obs[self.rows], None if rewards is None else rewards[self.rows]
        return StepRequest(self.post.trial_id, self.rows, obs, rewards, self.terminated, self.truncated)


@dataclass
class Decided(Wire):
    """The answer to a decision: actions [R, 2] (None: the step failed) and the board's context."""

    actions: np.ndarray | None
    context: BoardContext | None
