"""The policy server: one named, restartable async Ray actor around `PolicyCore`.

Requests that arrive within `batch_wait_ms` of each other are answered with one forward
pass. The server also holds the populations' boards (`distlmk.policy.board`): `decide` (an rl
trial's one call per decision) and `context` book a member's post and, after waiting (at most
the post's `wait_s`) until every known live member of that population, and every member the plan
announced (`expect`) that has not posted yet, has posted the epoch,
compute its features against the peers at the same epoch; a member a wait timed out on is not
waited for again until it posts, one that `leave`s never. The decisions of one flush get their
board contexts in one pass per (population, epoch) (`Boards.contexts`), then one forward pass.
An announced member that never posts (it has not started: a population larger than what runs at
once; it ended in an earlier run of a resumed search; it failed first) costs one wait's bound per
board, after which unseen members are not waited for. The boards live in memory: a restarted
server starts with empty boards and without the plan's counts (features read as "alone" until peers
post again; waits cover the members seen since). PPO updates run in a worker thread, so serving continues (with the previous
weights) while the Learner trains; the inference module is re-synced afterwards. After
every update the LearnerGroup is saved atomically under `checkpoint_dir`; a restarted
actor (`max_restarts`) reloads it, so weights survive a crash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import ray

from distlmk.atomic import atomic_write_dir, atomic_write_json
from distlmk.config import PolicyConfig, from_dict, to_dict
from distlmk.policy.board import Boards
from distlmk.protocol import BoardContext, BoardPost, Decided, DecisionRequest, StepRequest
from distlmk.rundir import POLICY_LATEST, POLICY_UPDATES, SERVER_STATE

log = logging.getLogger("distlmk.policy")
LATEST = POLICY_LATEST


# max_concurrency: every member of a large population may be waiting on a board at once (Ray's async default: 1000)
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=65536)
class PolicyServer:
    def __init__(self, cfg: dict, checkpoint_dir: str | None = None, sigma: dict | None = None):
        import torch

        torch.set_num_threads(1)
        from distlmk.policy.core import PolicyCore

        self.cfg: PolicyConfig = from_dict(PolicyConfig, cfg, "policy")
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.core = PolicyCore(self.cfg)
        self.restored_from = self.cfg.checkpoint
        self.updates_at_start = 0  # _load_counters sets it when weights are restored
        if self.cfg.checkpoint:  # a saved policy (an earlier generation): carry its counters on
            self._load_counters(Path(self.cfg.checkpoint).parent / SERVER_STATE)
        if self.checkpoint_dir and (self.checkpoint_dir / LATEST).is_dir():
            self.core.restore(str(self.checkpoint_dir / LATEST))
            self.restored_from = str(self.checkpoint_dir / LATEST)
            self._load_counters(self.checkpoint_dir / SERVER_STATE)
        elif self.cfg.pretrain_rounds > 0 and not self.cfg.freeze:
            from distlmk.config import SigmaConfig
            from distlmk.policy.rollout import warm_start

            sigma_cfg = (
                from_dict(SigmaConfig, sigma, "sigma") if sigma else SigmaConfig(method="rl")
            )
            warm_start(self.core, sigma_cfg)
            self.restored_from = f"simulator warm start ({self.cfg.pretrain_rounds} rounds)"
        self.started = time.time()
        self.queue: list[tuple[StepRequest | DecisionRequest, asyncio.Future, float]] = []  # (request, answer, waited_s)
        self.flush_handle: asyncio.TimerHandle | None = None
        self.training: asyncio.Task | None = None
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.history: list[dict] = []  # per update: stats for the analysis plots
        self.batch_sizes: list[int] = []
        self.boards = Boards()
        self._board_waiters: dict[tuple[str, int], asyncio.Event] = {}  # (board, epoch) -> set when nobody is pending
        self.board_waits = {"waits": 0, "timeouts": 0, "waited_s": 0.0}

    def _load_counters(self, path: Path) -> None:
        """Cumulative PPO updates and env steps of the weights being restored."""
        if path.is_file():
            saved = json.loads(path.read_text())
            self.core.stats["updates"] = saved.get("updates", 0)
            self.core.stats["env_steps"] = saved.get("env_steps", 0)
        self.updates_at_start = self.core.stats["updates"]

    # --- serving --------------------------------------------------------------------
    async def step(self, request: StepRequest) -> np.ndarray:
        return await self._enqueue(request)

    async def decide(self, request: DecisionRequest) -> Decided:
        """An rl trial's decision in one call: book its post, wait (bounded) for its peers, then its
        step, completed from the board's context, in the next flush."""
        waited = await self._post_and_wait(request.post)
        return await self._enqueue(request, waited)

    def _enqueue(self, request: StepRequest | DecisionRequest, waited_s: float = 0.0) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((request, fut, waited_s))
        if self.flush_handle is None:
            self.flush_handle = loop.call_later(self.cfg.batch_wait_ms / 1000.0, self._flush)
        return fut

    def _flush(self) -> None:
        batch, self.queue, self.flush_handle = self.queue, [], None
        if not batch:
            return
        self.batch_sizes.append(len(batch))
        self.batch_sizes = self.batch_sizes[-1000:]
        try:
            decisions = [(i, r) for i, (r, _, _) in enumerate(batch) if isinstance(r, DecisionRequest)]
            contexts = dict(zip((i for i, _ in decisions),
                                self.boards.contexts([r.post for _, r in decisions]), strict=True))
            for i, ctx in contexts.items():
                ctx.waited_s = batch[i][2]
            actions = self.core.act([r.complete(contexts[i]) if i in contexts else r
                                     for i, (r, _, _) in enumerate(batch)])
        except Exception as e:  # answer every waiter; the trials keep their sigmas
            log.exception("policy forward failed")
            for _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for i, ((_, fut, _), a) in enumerate(zip(batch, actions, strict=True)):
            if not fut.done():
                fut.set_result(Decided(a, contexts[i]) if i in contexts else a)
        if self.training is None and self.core.ready_to_train():
            self.training = asyncio.ensure_future(self._train())

    async def _train(self) -> None:
        try:
            episodes = self.core.collect_batch()
            loop = asyncio.get_running_loop()
            losses = await loop.run_in_executor(self.pool, self.core.update, episodes)
            self.core.sync_inference()
            s = self.core.summary()
            self.history.append(
                {
                    "update": s["updates"],
                    "time": time.time() - self.started,
                    "env_steps": s["env_steps"],
                    "decisions": s["decisions"],
                    "mean_trial_return": s["mean_trial_return"],
                    "mean_landmark_return": s["mean_landmark_return"],
                    **losses,
                }
            )
            if self.checkpoint_dir:
                await loop.run_in_executor(self.pool, self._save_checkpoint)
        except Exception:
            log.exception("policy update failed; serving goes on with the previous weights")
        finally:
            self.training = None

    def _save_checkpoint(self) -> str:
        """Save the LearnerGroup into `latest` (swapped in whole) and the server's counters."""
        assert self.checkpoint_dir is not None
        latest = atomic_write_dir(self.checkpoint_dir / LATEST, lambda tmp: self.core.save(str(tmp)))
        state = {k: self.core.stats[k] for k in ("updates", "env_steps", "decisions")}
        atomic_write_json(self.checkpoint_dir / SERVER_STATE, state)
        if self.history:
            with (self.checkpoint_dir / POLICY_UPDATES).open("a") as fh:
                fh.write(json.dumps(self.history[-1]) + "\n")
        return str(latest)

    # --- the boards -----------------------------------------------------------------
    def _release_waiters(self) -> None:
        """Wake the waits of every (board, epoch) nobody is pending for any more."""
        for key, done in list(self._board_waiters.items()):
            if not self.boards[key[0]].num_waiting(key[1]):
                done.set()
                del self._board_waiters[key]

    async def context(self, post: BoardPost) -> BoardContext:
        """Book the post, wait (bounded) for the population's live and announced members to post this
        epoch, answer the board context against the peers at this epoch."""
        waited = await self._post_and_wait(post)
        return self.boards[post.board].context(post, waited)

    async def _post_and_wait(self, post: BoardPost) -> float:
        """Book the post; wait (at most `post.wait_s`) until no live or announced member of its
        population is still to post this epoch. The seconds waited."""
        board = self.boards.post(post)
        self._release_waiters()
        t0 = time.perf_counter()
        if post.wait_s > 0 and board.num_waiting(post.epoch, post.trial_id):
            self.board_waits["waits"] += 1
            key = (post.board, int(post.epoch))
            done = self._board_waiters.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(done.wait(), post.wait_s)
            except TimeoutError:  # not waited for again until they post; releases the others at this epoch
                board.mark_missed(board.waiting_for(post.epoch, post.trial_id))
                self.board_waits["timeouts"] += 1
                self._release_waiters()
        waited = time.perf_counter() - t0
        self.board_waits["waited_s"] += waited
        return waited

    def expect(self, counts: dict[str, int]) -> None:
        """The search's plan: how many members each board's population has (`Boards.expect`)."""
        self.boards.expect(counts)

    async def leave(self, trial_id: str) -> None:
        """The trial is over: no board waits for it any more (its rows stay)."""
        self.boards.leave(trial_id)
        self._release_waiters()

    # --- control --------------------------------------------------------------------
    def end_trial(self, trial_id: str) -> int:
        return self.core.end_trial(trial_id)

    async def flush_training(self) -> dict:
        """Wait for a running update, then train on whatever is collected (end of experiment)."""
        while self.training is not None:
            await asyncio.sleep(0.01)
        if self.core.collected > 0 and not self.cfg.freeze:
            self.training = asyncio.ensure_future(self._train())
            await self.training
        return self.stats()

    def save(self, path: str) -> str:
        self.core.save(path)
        return path

    def checkpoint_now(self) -> str | None:
        return self._save_checkpoint() if self.checkpoint_dir else None

    def get_weights(self) -> dict:
        return self.core.weights()

    def stats(self) -> dict:
        s = self.core.summary()
        s.update(
            {
                "pid": os.getpid(),
                "uptime_s": time.time() - self.started,
                "restored_from": self.restored_from,
                "frozen": self.cfg.freeze,
                "updates_this_run": s["updates"] - self.updates_at_start,
                "mean_batch": float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0,
                "board": {"populations": len(self.boards.boards), **self.board_waits},
                "config": to_dict(self.cfg),
            }
        )
        return s

    def update_history(self) -> list[dict]:
        return list(self.history)

    def ping(self) -> bool:
        return True


def start_policy_server(name: str, cfg: PolicyConfig, checkpoint_dir: str | None, sigma=None):
    """Get the named server or create it (pinned softly to this node, where its checkpoints live).
    `sigma` (a SigmaConfig) shapes the simulator warm start when `cfg.pretrain_rounds` > 0."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    strategy = NodeAffinitySchedulingStrategy(
        node_id=ray.get_runtime_context().get_node_id(), soft=True
    )
    return PolicyServer.options(
        name=name, get_if_exists=True, scheduling_strategy=strategy
    ).remote(to_dict(cfg), checkpoint_dir, None if sigma is None else to_dict(sigma))
