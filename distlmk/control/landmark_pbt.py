"""landmark_pbt: per-landmark exploit/explore of sigma on the population's board, and the cold start.

A hand-written population baseline that reads the same board as the rl policy: every
`sigma.landmark_pbt.interval` epochs a member posts its sigma and validation error per
landmark (`distlmk.protocol.BoardPost` with a `PBTRule`) through the policy transport; the
server computes the rule on the board (`distlmk.policy.board.landmark_pbt_sigma`): per
landmark, a member in the bottom quantile of error among the members at that epoch takes a
random top member's sigma_l times a random perturbation, clipped to [sigma.min, sigma.max];
the others keep theirs. No weights are copied. A member that cannot reach the server keeps
its sigmas. When the member is over it leaves the board (nobody waits for it).

`latin_sigmas` spreads a population's starting sigmas over the range (a Latin-hypercube design
per landmark in log sigma), for landmark_pbt and rl populations alike.
"""

from __future__ import annotations

import numpy as np

from distlmk.config import SigmaConfig
from distlmk.control.base import Decision, EpochFeedback, SigmaController
from distlmk.control.rl import PolicyTransport, RayPolicyTransport, board_name
from distlmk.protocol import BoardPost, PBTRule


def latin_sigmas(n_members: int, num_landmarks: int, lo: float, hi: float, seed: int | list[int]) -> np.ndarray:
    """Starting sigmas [n_members, num_landmarks]: per landmark, [log lo, log hi] cut into n_members
    equal strata, each member at the middle of a different one, the strata shuffled independently
    per landmark (so no member is small or large on every landmark)."""
    if n_members < 1 or num_landmarks < 0 or not 0 < lo <= hi:
        raise ValueError(f"latin_sigmas: need n_members >= 1 and 0 < lo <= hi, got {n_members}, {lo}, {hi}")
    rng = np.random.default_rng(seed)
    strata = np.stack([rng.permutation(n_members) for _ in range(num_landmarks)], axis=1)  # [N, L]
    u = (strata + 0.5) / n_members
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))).reshape(n_members, num_landmarks)


class LandmarkPBTSigma(SigmaController):
    name = "landmark_pbt"

    def __init__(self, cfg: SigmaConfig, num_landmarks: int, trial_id: str,
                 transport: PolicyTransport | None = None):
        super().__init__(cfg, num_landmarks)
        p = cfg.landmark_pbt
        if p.interval < 1 or not 0 < p.quantile <= 0.5 or not p.perturb:
            raise ValueError("sigma.landmark_pbt: interval >= 1, 0 < quantile <= 0.5 and a non-empty perturb")
        self.trial_id = trial_id
        self.board = board_name(cfg)
        self.transport = transport or RayPolicyTransport(cfg.rl.server_name, cfg.rl.timeout_s)
        self.rule = PBTRule(p.quantile, tuple(float(f) for f in p.perturb), cfg.min, cfg.max, p.seed)
        self.exploits = 0  # landmark sigmas taken from top members so far
        self.failures = 0
        self._left = False

    def observe(self, fb: EpochFeedback) -> Decision:
        if fb.epoch % self.cfg.landmark_pbt.interval or fb.epoch >= fb.epochs:
            return Decision()
        err = np.asarray(fb.val_error_mm, float)
        post = BoardPost(self.board, self.trial_id, fb.epoch, self._sigma.copy(), err, self.rule.quantile,
                         self.cfg.rl.peer_wait_s, rule=self.rule, member=self.cfg.rl.member)
        ctx = self.transport.context(post)
        if ctx is None or ctx.sigma_next is None:
            self.failures += 1
            return Decision(info={"policy_failed": True})
        self._sigma = np.asarray(ctx.sigma_next, float).copy()
        self.exploits += int(np.sum(ctx.exploited))
        return Decision(info={"policy_latency_ms": self.transport.last_latency_ms})

    def close(self, truncated: bool = True) -> None:
        if not self._left:
            self.transport.leave(self.trial_id)
            self._left = True

    def state_dict(self) -> dict:
        return {"sigma": self._sigma.tolist(), "exploits": self.exploits, "failures": self.failures}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.exploits = int(state.get("exploits", 0))
        self.failures = int(state.get("failures", 0))
