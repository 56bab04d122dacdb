"""rl: per-landmark sigma moves and early stops chosen by the central RLlib policy.

The trial side of the one protocol (`distlmk.protocol`): every `decision_interval` epochs
`RLSigma` makes one call (`decide`): it posts its sigma and per-landmark validation error to
its population's board, with its L+1 rows' own features (`TrialState.observation`) and the
own-form rewards of its previous decision; the policy side completes the rows and the peer
reward from the board's context and answers the actions, which the trial applies.
Transports: `RayPolicyTransport` (the named policy actor of a population, which holds the
boards) or an in-process one (`distlmk.policy.local`) for the warm start and tests, so every
user of the policy speaks the same protocol through the same client.

If the policy is unreachable or slower than `timeout_s`, the trial keeps its sigmas, logs it
and goes on (a board it cannot reach reads as no peers); its next contact truncates the broken
episode first, as does a (re)start after a retry or a PBT exploit (`end_trial`), so no episode
mixes two histories. When the trial is over it `leave`s the board (nobody waits for it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from distlmk.config import SigmaConfig
from distlmk.control.base import Decision, EpochFeedback, SigmaController
from distlmk.protocol import (
    NO_ACTION,
    OBS_DIM,
    OBS_LIMIT,
    ActionPart,
    BoardContext,
    BoardPost,
    Decided,
    DecisionRequest,
    Feature,
    Move,
    PeerReward,
    StepRequest,
    fill_board,
    log_ratio_to_peers,
)

log = logging.getLogger("distlmk.control.rl")


class PolicyTransport(Protocol):
    """How a trial reaches the policy server: `decide` posts to the board and answers the
    actions with the board context (None: no answer), `context` posts and answers the context
    alone, `step` answers actions [R, 2]; `last_latency_ms` is the last answered call's round
    trip (None where not measured)."""

    last_latency_ms: float | None

    def decide(self, request: DecisionRequest) -> Decided | None: ...

    def context(self, post: BoardPost) -> BoardContext | None: ...

    def step(self, request: StepRequest) -> np.ndarray | None: ...

    def end_trial(self, trial_id: str) -> None: ...

    def leave(self, trial_id: str) -> None: ...


def board_name(cfg: SigmaConfig) -> str:
    """The population a trial's board rows go to: `sigma.rl.board`, else its method."""
    return cfg.rl.board or cfg.method


class RayPolicyTransport:
    """The central policy as a named Ray actor; failures become None (keep sigmas)."""

    def __init__(self, server_name: str, timeout_s: float):
        self.server_name, self.timeout_s = server_name, timeout_s
        self._server = None
        self.last_latency_ms: float | None = None

    def _call(self, method: str, *args, extra_s: float = 0.0):
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            if self._server is None:
                self._server = ray.get_actor(self.server_name)
            t0 = time.perf_counter()
            out = ray.get(getattr(self._server, method).remote(*args), timeout=self.timeout_s + extra_s)
            self.last_latency_ms = (time.perf_counter() - t0) * 1e3
            return out
        except (GetTimeoutError, RayError, ValueError) as e:
            self._server = None
            log.warning("policy server %r did not answer %s (%s); keeping current sigmas",
                        self.server_name, method, type(e).__name__)
            return None

    def decide(self, request: DecisionRequest) -> Decided | None:
        return self._call("decide", request, extra_s=request.post.wait_s)  # the server may wait for peers first

    def context(self, post: BoardPost) -> BoardContext | None:
        return self._call("context", post, extra_s=post.wait_s)

    def step(self, request: StepRequest) -> np.ndarray | None:
        return self._call("step", request)

    def end_trial(self, trial_id: str) -> None:
        self._call("end_trial", trial_id)

    def leave(self, trial_id: str) -> None:
        self._call("leave", trial_id)


@dataclass
class TrialState:
    """Trial-side state of the RL interaction: builds rows and rewards, applies actions."""

    num_landmarks: int
    sigma_cfg: SigmaConfig
    first_err: np.ndarray | None = None
    first_loss: np.ndarray | None = None
    prev_err: np.ndarray | None = None
    prev_rel: np.ndarray | None = None  # [L] log(err / peers' median err) at the previous decision (nan: no peers)
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

    def observation(self, sigma: np.ndarray, err: np.ndarray, loss: np.ndarray, epoch: int, epochs: int,
                    board: np.ndarray | None = None) -> np.ndarray:
        """All L+1 rows [L+1, OBS_DIM] for the current state; `board` [L, BOARD_DIM] from the
        board's context (None: board features 0, as the policy side receives them before it
        fills them in, `protocol.fill_board`)."""
        F = Feature
        if self.first_err is None:
            self.first_err = np.maximum(err, 1e-6).copy()
            self.first_loss = np.maximum(loss, 1e-12).copy()
        prev = self.prev_err if self.prev_err is not None else err
        lo, hi = np.log(self.sigma_cfg.min), np.log(self.sigma_cfg.max)
        lm = np.zeros((self.num_landmarks, OBS_DIM), np.float32)
        lm[:, F.IS_TRIAL_ROW] = 0.0
        lm[:, F.SIGMA_POS] = (np.log(sigma) - lo) / max(hi - lo, 1e-9)
        lm[:, F.LOG_ERR_REL] = np.log(np.maximum(err, 1e-6) / self.first_err)
        lm[:, F.TREND] = np.clip((prev - err) / np.maximum(prev, 1e-6), -1, 1)
        lm[:, F.LOG_LOSS_REL] = np.log(np.maximum(loss, 1e-12) / self.first_loss)
        lm[:, F.PROGRESS] = epoch / max(epochs, 1)
        lm[:, F.LAST_MOVE] = self.last_move
        trial = lm.mean(axis=0, keepdims=True)
        trial[0, F.IS_TRIAL_ROW] = 1.0
        trial[0, F.LOG_ERR_REL] = np.log(max(err.mean(), 1e-6) / self.first_err.mean())
        trial[0, F.TREND] = np.clip((prev.mean() - err.mean()) / max(prev.mean(), 1e-6), -1, 1)
        trial[0, F.LAST_MOVE] = 0.0
        own = np.clip(np.concatenate([lm, trial]), -OBS_LIMIT, OBS_LIMIT).astype(np.float32)
        return own if board is None else fill_board(own, board)

    def rewards(self, err: np.ndarray, epoch: int, peer_median: np.ndarray | None = None,
                final: np.ndarray | None = None, trial_final: bool = False) -> np.ndarray:
        """Rewards [L+1] for the previous decision (landmark rows, then the trial row), in the form
        `sigma.rl.reward`; `peer_median` [L] the peers' median error now (nan/None: no peers);
        `final` [L] the landmark rows whose last step this is, `trial_final` the trial row's."""
        own, peer = self.reward_parts(err, epoch, final, trial_final)
        return own if peer is None else peer.rewards(own, log_ratio_to_peers(err, peer_median))

    def reward_parts(self, err: np.ndarray, epoch: int, final: np.ndarray | None = None,
                     trial_final: bool = False) -> tuple[np.ndarray, PeerReward | None]:
        """The rewards [L+1] that need no peers (the own or terminal form), and for the peer form
        what the peers' median turns into its rewards (`protocol.PeerReward`, where the policy
        side has the board)."""
        if self.prev_err is None:
            raise RuntimeError("TrialState.rewards: no previous decision committed, nothing to reward")
        rl = self.sigma_cfg.rl
        cost = rl.epoch_cost * (epoch - self.prev_epoch)
        if rl.reward == "terminal":
            done = np.zeros(self.num_landmarks, bool) if final is None else np.asarray(final, bool)
            total = self.terminal_landmark_rewards(err)
            lm = np.where(done | trial_final, total, 0.0)
            return np.append(lm, (total.mean() if trial_final else 0.0) - cost).astype(np.float32), None
        own = rl.reward_scale * np.log(np.maximum(self.prev_err, 1e-6) / np.maximum(err, 1e-6))
        own_rewards = np.append(own, own.mean() - cost).astype(np.float32)
        if rl.reward != "peer":
            return own_rewards, None
        prev_rel = self.prev_rel if self.prev_rel is not None else np.full(self.num_landmarks, np.nan)
        return own_rewards, PeerReward(prev_rel, rl.reward_scale, cost)

    def terminal_landmark_rewards(self, err: np.ndarray) -> np.ndarray:
        """reward_scale * log(first err / err) per landmark: the terminal form's last reward."""
        first = self.first_err if self.first_err is not None else np.maximum(err, 1e-6)
        return self.sigma_cfg.rl.reward_scale * np.log(first / np.maximum(err, 1e-6))

    def stop_rewards(self, err: np.ndarray) -> np.ndarray:
        """Rewards [L+1] of the stop action itself (no epoch spent): 0, or the terminal reward."""
        if self.sigma_cfg.rl.reward != "terminal":
            return np.zeros(self.num_landmarks + 1, np.float32)
        lm = self.terminal_landmark_rewards(err)
        return np.append(lm, lm.mean()).astype(np.float32)

    def commit(self, err: np.ndarray, epoch: int, peer_median: np.ndarray | None = None) -> None:
        self.prev_err = err.copy()
        self.prev_rel = log_ratio_to_peers(err, peer_median)
        self.prev_epoch = epoch

    def apply(self, sigma: np.ndarray, rows: np.ndarray, actions: np.ndarray, progress: float,
              donor: np.ndarray | None = None) -> tuple[np.ndarray, bool, np.ndarray]:
        """Apply actions [R, 2] of `rows` to sigma; `donor` [L] is ADOPT's target, the board's
        `BoardContext.donor_sigma` (None: no board answer, ADOPT keeps). Returns (new sigma, stop,
        newly ended mask)."""
        c = self.sigma_cfg
        may_end = c.rl.allow_stop and progress >= c.rl.min_progress_to_stop
        move = actions[:, ActionPart.MOVE].astype(int)
        ends = actions[:, ActionPart.END].astype(bool) & may_end
        is_lm = rows < self.trial_row
        lm_rows, lm_move = rows[is_lm], move[is_lm]
        steps = np.where(lm_move == Move.ADOPT, 0, lm_move - int(Move.KEEP))
        target = sigma[lm_rows] * c.rl.step_factor ** steps
        if donor is not None:  # ADOPT: a top peer's sigma_l
            target = np.where(lm_move == Move.ADOPT, np.asarray(donor, float)[lm_rows], target)
        new = sigma.copy()
        new[lm_rows] = np.clip(target, c.min, c.max)
        self.last_move[:] = 0
        adopted = np.sign(np.round(np.log(target / sigma[lm_rows]), 6))  # ADOPT: the way it moved (clipped or not)
        self.last_move[lm_rows] = np.where(lm_move == Move.ADOPT, adopted, steps)
        newly_ended = np.zeros(self.num_landmarks, bool)
        newly_ended[lm_rows] = ends[is_lm]
        stop = bool(ends[~is_lm].any())
        return new, stop, newly_ended

    _ARRAYS = ("first_err", "first_loss", "prev_err", "prev_rel", "last_move")

    def state_dict(self) -> dict:
        def arr(a: np.ndarray | None) -> list | None:
            return None if a is None else a.tolist()

        return {k: arr(getattr(self, k)) for k in (*self._ARRAYS, "ended")} | {"prev_epoch": self.prev_epoch}

    def load_state_dict(self, s: dict) -> None:
        for k in self._ARRAYS:
            v = s.get(k)  # prev_rel: absent from checkpoints written before the board
            setattr(self, k, None if v is None else np.asarray(v, np.float64))
        self.ended = np.asarray(s["ended"], bool)
        self.prev_epoch = int(s["prev_epoch"])


class RLSigma(SigmaController):
    name = "rl"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int, trial_id: str,
                 transport: PolicyTransport | None = None):
        super().__init__(cfg, num_landmarks)
        self.trial_id = trial_id
        self.board = board_name(cfg)
        self.transport = transport or RayPolicyTransport(cfg.rl.server_name, cfg.rl.timeout_s)
        self.state = TrialState(num_landmarks, cfg)
        self.ending = np.zeros(num_landmarks, bool)  # ended last decision; terminal step not yet sent
        self.total_reward = 0.0
        self.failures = 0
        self.last_context: BoardContext | None = None
        self._fresh = True  # no valid pending action at the server (start, restart, lost reply)
        self._closed = False
        self._left = False

    def _send(self, rows: np.ndarray, obs: np.ndarray, rewards: np.ndarray | None,
              terminated: np.ndarray, truncated: bool = False) -> np.ndarray | None:
        req = StepRequest(self.trial_id, rows, obs[rows], None if rewards is None else rewards[rows],
                          terminated, truncated)
        actions = self.transport.step(req)
        if actions is None:
            self.failures += 1
            self._fresh = True
        return actions

    def _live_rows(self) -> np.ndarray:
        """Landmarks still interacting (or ending now: their terminal step is due), then the trial row."""
        return np.append(np.flatnonzero(~self.state.ended | self.ending), self.state.trial_row)

    def observe(self, fb: EpochFeedback) -> Decision:
        st = self.state
        last = fb.epoch >= fb.epochs
        if self._closed or (fb.epoch % self.cfg.rl.decision_interval and not last):
            return Decision(ended=st.ended.copy())
        err, loss = np.asarray(fb.val_error_mm, float), np.asarray(fb.train_loss, float)
        rl = self.cfg.rl
        post = BoardPost(self.board, self.trial_id, fb.epoch, self._sigma.copy(), err.copy(), rl.peer_quantile,
                         rl.peer_wait_s, member=rl.member)
        own, peer = self._rewards_due(err, fb.epoch, last)
        rows = self._live_rows()
        request = DecisionRequest(post, rows, st.observation(self._sigma, err, loss, fb.epoch, fb.epochs), own,
                                  np.append(self.ending[rows[:-1]], False), last, peer)
        answer = self.transport.decide(request)  # one call: board post, context and actions
        actions = answer.actions if answer is not None else None
        ctx = answer.context if answer is not None and answer.context is not None else None
        self.last_context = ctx if ctx is not None else BoardContext.alone(self.num_landmarks)
        if actions is None:
            self.failures += 1
            self._fresh = True
        rewards = request.rewards_given(self.last_context)  # what the policy side booked
        if rewards is not None:
            self.total_reward += float(rewards[-1])
        st.commit(err, fb.epoch, self.last_context.peer_median_err if self.last_context.num_peers else None)
        self.ending[:] = False
        reward = None if rewards is None else float(rewards[-1])
        info = {"policy_latency_ms": self.transport.last_latency_ms}
        if last:
            self._closed = True
            return Decision(reward=reward, ended=st.ended.copy(), info=info)
        if actions is None:  # no answer: keep sigmas, carry on
            return Decision(reward=reward, ended=st.ended.copy(), info={"policy_failed": True})
        stop = self._apply(rows, actions, fb.epoch / fb.epochs, self.last_context.donor_sigma)
        if stop:  # the trial's last step: every live row's episode terminates here
            still = self._live_rows()
            self._send(still, fill_board(request.obs, self.last_context.features), st.stop_rewards(err),
                       np.ones(len(still), bool))
            self._closed = True
        return Decision(stop=stop, reward=reward, ended=st.ended.copy(), info=info)

    def _rewards_due(self, err: np.ndarray, epoch: int,
                     last: bool) -> tuple[np.ndarray | None, PeerReward | None]:
        """Rewards of the previous decision, as `TrialState.reward_parts`; (None, None) when the
        policy holds no pending action for us."""
        if self._fresh:  # (re)start or lost reply: truncate whatever the policy still holds
            self.transport.end_trial(self.trial_id)
            self.ending[:] = False
            self._fresh = False
            return None, None
        if self.state.prev_err is None:
            return None, None
        return self.state.reward_parts(err, epoch, final=self.ending, trial_final=last)

    def _apply(self, rows: np.ndarray, actions: np.ndarray, progress: float, donor: np.ndarray | None) -> bool:
        live = actions[:, ActionPart.MOVE] != NO_ACTION
        self._sigma, stop, newly = self.state.apply(self._sigma, rows[live], actions[live], progress, donor)
        self.state.ended |= newly
        self.ending = newly
        return stop

    def close(self, truncated: bool = True) -> None:
        if not self._closed:
            self.transport.end_trial(self.trial_id)
            self._closed = True
        if not self._left:  # over: the board no longer waits for this trial
            self.transport.leave(self.trial_id)
            self._left = True

    def state_dict(self) -> dict:
        return {
            "sigma": self._sigma.tolist(),
            "proto": self.state.state_dict(),
            "ending": self.ending.tolist(),
            "total_reward": self.total_reward,
            "failures": self.failures,
            "closed": self._closed,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.state.load_state_dict(state["proto"])
        self.ending = np.asarray(state["ending"], bool)
        self.total_reward = float(state["total_reward"])
        self.failures = int(state["failures"])
        self._closed = bool(state["closed"])
        self._fresh = True
