"""In-process transports: the real `RLSigma` client talking to a policy without Ray.

`CoreTransport` serves a `PolicyCore` directly and trains it whenever a batch is ready, as
the policy server does after a flush, so the warm start and the learning tests use the very
protocol and client that live trials use. `FixedActionTransport` answers every row with
a fixed or random move and never stops: the fair baselines of the learning test.
"""

from __future__ import annotations

import numpy as np

from distlmk.policy.core import PolicyCore
from distlmk.protocol import KEEP_MOVE, StepRequest


class CoreTransport:
    def __init__(self, core: PolicyCore):
        self.core = core
        self.last_latency_ms: float | None = None  # not measured in process

    def step(self, request: StepRequest) -> np.ndarray:
        actions = self.core.act([request])[0]
        if self.core.ready_to_train():
            self.core.train()
        return actions

    def end_trial(self, trial_id: str) -> None:
        self.core.end_trial(trial_id)


class FixedActionTransport:
    """keep: every sigma stays, nothing stops; random: uniform random moves, nothing stops."""

    def __init__(self, mode: str, seed: int = 0):
        if mode not in ("keep", "random"):
            raise ValueError(f"unknown baseline {mode!r}: keep or random")
        self.mode, self.rng = mode, np.random.default_rng(seed)
        self.last_latency_ms: float | None = None  # not measured in process

    def step(self, request: StepRequest) -> np.ndarray:
        n = len(request.rows)
        moves = np.full(n, KEEP_MOVE) if self.mode == "keep" else self.rng.integers(0, 3, n)
        return np.stack([moves, np.zeros(n, np.int64)], axis=1)

    def end_trial(self, trial_id: str) -> None:
        pass
