"""In-process transports: the real `RLSigma` client talking to a policy without Ray.

`CoreTransport` serves a `PolicyCore` directly and trains it whenever a batch is ready, as
the policy server does after a flush, so the warm start and the learning tests use the very
protocol and client that live trials use. `FixedActionTransport` answers every row with
a fixed or random move and never stops: the fair baselines of the learning test. Both hold
the population's boards, as the server does, but never wait for peers: an in-process
population steps in lock step and posts every member's epoch before any member decides
(`distlmk.policy.rollout`).
"""

from __future__ import annotations

import numpy as np

from distlmk.policy.board import Boards
from distlmk.policy.core import PolicyCore
from distlmk.protocol import KEEP_MOVE, ActionPart, BoardContext, BoardPost, Decided, DecisionRequest, Move, StepRequest


class LocalBoards:
    """The board half of the protocol, in process (no waiting). `blind`: every answer is the
    neutral "alone" context (an ablation: the same population without its board)."""

    def __init__(self, blind: bool = False) -> None:
        self.boards = Boards()
        self.blind = blind
        self.last_latency_ms: float | None = None  # not measured in process

    def context(self, post: BoardPost) -> BoardContext:
        ctx = self.boards.answer(post)
        return BoardContext.alone(len(post.err)) if self.blind else ctx

    def decide(self, request: DecisionRequest) -> Decided:
        """What the server's `decide` does, in process: post, context, the completed step."""
        ctx = self.context(request.post)
        return Decided(self.step(request.complete(ctx)), ctx)

    def step(self, request: StepRequest) -> np.ndarray:
        raise NotImplementedError  # the transports below answer steps

    def leave(self, trial_id: str) -> None:
        self.boards.leave(trial_id)


class CoreTransport(LocalBoards):
    def __init__(self, core: PolicyCore, blind: bool = False):
        super().__init__(blind)
        self.core = core

    def step(self, request: StepRequest) -> np.ndarray:
        actions = self.core.act([request])[0]
        if self.core.ready_to_train():
            self.core.train()
        return actions

    def end_trial(self, trial_id: str) -> None:
        self.core.end_trial(trial_id)


class FixedActionTransport(LocalBoards):
    """keep: every sigma stays; random: uniform random steps (lower, keep or raise; ADOPT reads the
    board, a random walk does not); adopt: ADOPT on every landmark at every decision (a top peer's
    sigma, the copy a learned policy can make, without a learned when). Nothing stops."""

    MODES = ("keep", "random", "adopt")

    def __init__(self, mode: str, seed: int = 0):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown baseline {mode!r}: one of {self.MODES}")
        self.mode, self.rng = mode, np.random.default_rng(seed)

    def step(self, request: StepRequest) -> np.ndarray:
        n = len(request.rows)
        out = np.zeros((n, len(ActionPart)), np.int64)  # END column: continue
        if self.mode == "random":
            out[:, ActionPart.MOVE] = self.rng.integers(int(Move.LOWER), int(Move.RAISE) + 1, n)
        else:
            out[:, ActionPart.MOVE] = KEEP_MOVE if self.mode == "keep" else int(Move.ADOPT)
        return out

    def end_trial(self, trial_id: str) -> None:
        pass
