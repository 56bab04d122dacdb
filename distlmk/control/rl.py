"""rl: per-landmark sigma moves and early stops chosen by the central RLlib policy.

Every `decision_interval` epochs the trial sends its rows (see `policy/protocol.py`) with
the rewards of its previous decision and applies the returned actions. If the policy is
unreachable or slower than `timeout_s`, the trial keeps its sigmas, logs it, and goes on;
its next contact truncates the broken episode first, as does a (re)start after a retry or
a PBT exploit (`end_trial`), so no episode mixes two histories.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayError

from distlmk.config import SigmaConfig
from distlmk.control.base import Decision, EpochFeedback, SigmaController
from distlmk.policy.protocol import StepRequest, TrialProtocol

log = logging.getLogger("distlmk.control.rl")


class RLSigma(SigmaController):
    name = "rl"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int, trial_id: str):
        super().__init__(cfg, num_landmarks)
        self.trial_id = trial_id
        self.proto = TrialProtocol(num_landmarks, cfg)
        self.ending = np.zeros(
            num_landmarks, bool
        )  # ended last decision; terminal step not yet sent
        self.total_reward = 0.0
        self.failures = 0
        self._fresh = True  # no valid pending action at the server (start, restart, lost reply)
        self._closed = False
        self._server = None
        self.last_latency_ms: float | None = None

    # --- transport --------------------------------------------------------------------
    def _call(self, method: str, *args):
        try:
            if self._server is None:
                self._server = ray.get_actor(self.cfg.rl.server_name)
            t0 = time.perf_counter()
            out = ray.get(getattr(self._server, method).remote(*args), timeout=self.cfg.rl.timeout_s)
            self.last_latency_ms = (time.perf_counter() - t0) * 1e3
            return out
        except (GetTimeoutError, RayError, ValueError) as e:
            self.failures += 1
            self._fresh = True
            self._server = None
            log.warning(
                "trial %s: policy server %r did not answer %s (%s); keeping current sigmas",
                self.trial_id,
                self.cfg.rl.server_name,
                method,
                type(e).__name__,
            )
            return None

    def _send(
        self,
        rows: np.ndarray,
        obs: np.ndarray,
        rewards: np.ndarray | None,
        terminated: np.ndarray,
        truncated: bool = False,
    ) -> np.ndarray | None:
        req = StepRequest(
            self.trial_id,
            rows,
            obs[rows],
            None if rewards is None else rewards[rows],
            terminated,
            truncated,
        )
        return self._call("step", req)

    # --- the controller interface ----------------------------------------------------------
    def observe(self, fb: EpochFeedback) -> Decision:
        last = fb.epoch >= fb.epochs
        if self._closed or (fb.epoch % self.cfg.rl.decision_interval and not last):
            return Decision(ended=self.proto.ended.copy())
        p = self.proto
        err, loss = np.asarray(fb.val_error_mm, float), np.asarray(fb.train_loss, float)
        obs = p.observation(self._sigma, err, loss, fb.epoch, fb.epochs, fb.diag_mm)
        rewards = None
        if self._fresh:
            self._call("end_trial", self.trial_id)
            self.ending[:] = False
        elif p.prev_err is not None:
            rewards = p.rewards(err, fb.epoch, self.cfg.rl.epoch_cost)
        trial_reward = None if rewards is None else float(rewards[-1])
        self.total_reward += trial_reward or 0.0
        rows = np.append(np.flatnonzero(~p.ended | self.ending), p.trial_row)
        terminated = np.append(self.ending[rows[:-1]], False)
        self._fresh = False
        actions = self._send(rows, obs, rewards, terminated, truncated=last)
        p.commit(err, fb.epoch)
        self.ending[:] = False
        info = {"policy_latency_ms": self.last_latency_ms if actions is not None else None}
        if last:
            self._closed = True
            return Decision(reward=trial_reward, ended=p.ended.copy(), info=info)
        if actions is None:  # no answer: keep sigmas, carry on
            return Decision(reward=trial_reward, ended=p.ended.copy(), info={"policy_failed": True})
        live = actions[:, 0] >= 0
        self._sigma, stop, newly = p.apply(
            self._sigma, rows[live], actions[live], fb.epoch / fb.epochs
        )
        p.ended |= newly
        self.ending = newly
        if stop:
            still = np.append(np.flatnonzero(~p.ended | self.ending), p.trial_row)
            self._send(still, obs, np.zeros(len(obs), np.float32), np.ones(len(still), bool))
            self._closed = True
        return Decision(stop=stop, reward=trial_reward, ended=p.ended.copy(), info=info)

    def close(self, truncated: bool = True) -> None:
        if not self._closed:
            self._call("end_trial", self.trial_id)
            self._closed = True

    def state_dict(self) -> dict:
        return {
            "sigma": self._sigma.tolist(),
            "proto": self.proto.state_dict(),
            "ending": self.ending.tolist(),
            "total_reward": self.total_reward,
            "failures": self.failures,
            "closed": self._closed,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.proto.load_state_dict(state["proto"])
        self.ending = np.asarray(state["ending"], bool)
        self.total_reward = float(state["total_reward"])
        self.failures = int(state["failures"])
        self._closed = bool(state["closed"])
        self._fresh = True
