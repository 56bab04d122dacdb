"""Populations of simulated trials driven through the real `RLSigma` client, in one process.

Used for the policy's warm start and to show that it learns: each member is the simulated
trainer (`sim.trainer`, a `distlmk.sim` model in place of a network) with an `RLSigma`
controller whose transport reaches a `PolicyCore` in process (or a fixed baseline), so the
protocol is exactly the one live trials speak, board included. A rollout is one population
on one task: every member shares the simulated landmarks (their ambiguity, best sigma and
starting error) and has its own noise, and starts from its row of a Latin-hypercube design of
sigmas over [sigma.min, sigma.max] (`latin_sigmas`), cold, as a live population does. Members
step in lock step, epoch by epoch; every member's epoch is posted to the shared board before
any member decides, so each sees all its peers at that epoch (what the policy server's wait
gives a live lockstep population). The policy trains whenever a batch is ready.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from distlmk.config import DataConfig, ExperimentConfig, SigmaConfig, TrainConfig
from distlmk.control.landmark_pbt import LandmarkPBTSigma, latin_sigmas
from distlmk.control.rl import RLSigma
from distlmk.policy.core import PolicyCore
from distlmk.policy.local import CoreTransport, FixedActionTransport, LocalBoards
from distlmk.protocol import BoardPost
from distlmk.sim.trainer import SimulatedTrainer

log = logging.getLogger("distlmk.policy")


@dataclass
class RolloutResult:
    trial_returns: np.ndarray  # [T] sum of the trial row's rewards
    final_err: np.ndarray  # [T] mean final validation error (mm)
    sigma_distance: np.ndarray  # [T] mean |log sigma - log best sigma| at the end
    epochs_used: np.ndarray  # [T]
    sigma_spread: float = 0.0  # sd of log sigma over the members at the end, mean over landmarks (0: a herd)


def task_seed(seed: int) -> int:
    """The simulated task (its landmarks) of population `seed`."""
    return seed * 100_003


def member_rng(task: int, member: int) -> np.random.Generator:
    """A member's own noise on task `task`: the same landmarks as its peers, its own draws."""
    return np.random.default_rng([task, member, 31])


def make_trial(sigma_cfg: SigmaConfig, num_landmarks: int, epochs: int, task: int, member: int, start: np.ndarray,
               trial_id: str, board: str, transport, method: str = "rl", simulator: str = "cost_model",
               ) -> SimulatedTrainer:
    """One simulated member (rl, or the landmark_pbt rule) of population `task`: the task's
    simulated network (`distlmk.sim.SIMULATORS[simulator]`) with its own noise, starting at sigma `start` [L]."""
    rl = dataclasses.replace(sigma_cfg.rl, board=board, member=member)  # the board's draws keyed by the member
    sigma = dataclasses.replace(sigma_cfg, method=method, per_landmark=[float(s) for s in start], rl=rl)
    exp = ExperimentConfig(data=DataConfig(num_landmarks=num_landmarks), train=TrainConfig(epochs=epochs, seed=task),
                           sigma=sigma)
    controller = (LandmarkPBTSigma if method == "landmark_pbt" else RLSigma)(sigma, num_landmarks, trial_id, transport)
    trainer = SimulatedTrainer(exp, controller=controller, seed=task, model=simulator)
    trainer.model.rng = member_rng(task, member)
    return trainer


def rollout(policy: PolicyCore | str, sigma_cfg: SigmaConfig, num_trials: int, num_landmarks: int, epochs: int,
            seed: int, tag: str = "t", blind: bool = False, simulator: str = "cost_model") -> RolloutResult:
    """Run a population of `num_trials` simulated members (task `seed`) to completion. `policy` is
    a PolicyCore or a baseline name ("keep": never move nor stop; "random": random moves, never stop;
    "adopt": ADOPT every landmark at every decision; "landmark_pbt": the hand-written rule, every `sigma_cfg.landmark_pbt.interval` epochs, on the
    same board). `blind`: the policy's board answers are neutral (the same population without its board).
    `simulator`: which `distlmk.sim` model stands in for the networks."""
    method = "landmark_pbt" if policy == "landmark_pbt" else "rl"
    if method == "landmark_pbt":
        transport = LocalBoards()
    else:
        transport = FixedActionTransport(policy, seed) if isinstance(policy, str) else CoreTransport(policy, blind)
    task = task_seed(seed)
    starts = latin_sigmas(num_trials, num_landmarks, sigma_cfg.min, sigma_cfg.max, seed=task)
    trials = [make_trial(sigma_cfg, num_landmarks, epochs, task, i, starts[i], f"{tag}{i}", tag, transport, method,
                         simulator) for i in range(num_trials)]
    while live := [t for t in trials if not t.done]:
        measured = [(t, t.measure_epoch()) for t in live]
        for t, m in measured:  # the whole population's epoch on the board first
            transport.boards.post(BoardPost(tag, t.controller.trial_id, t.epoch, m.sigma_used, m.val_error_mm))
        for t, m in measured:
            t.finish_epoch(m)
    return RolloutResult(
        trial_returns=np.array([getattr(t.controller, "total_reward", 0.0) for t in trials]),
        final_err=np.array([t.model.err.mean() for t in trials]),
        sigma_distance=np.array([np.mean(np.abs(np.log(t.controller.sigma_values()) - t.model.log_target))
                                 for t in trials]),
        epochs_used=np.array([t.epoch for t in trials]),
        sigma_spread=float(np.log([t.controller.sigma_values() for t in trials]).std(axis=0).mean()),
    )


BASELINES = ("keep", "random", "adopt", "landmark_pbt", "blind")


def evaluate_frozen(core: PolicyCore, sigma_cfg: SigmaConfig, num_trials: int, num_landmarks: int, epochs: int,
                    seed: int, simulator: str = "cost_model", baselines: tuple[str, ...] = BASELINES,
                    sampled: bool = False) -> tuple[RolloutResult, dict[str, RolloutResult]]:
    """The policy, frozen and greedy (`sampled`: drawing its actions), and fair baselines on task `seed`
    (the same members each, so errors pair member by member): "keep", "random", "adopt" (a top peer's
    sigma at every decision: the policy's copy without its learned when), "landmark_pbt" (the rule at
    the policy's decision interval, on the same board) and "blind" (this policy with every board
    answer neutral). The core's freeze and explore flags are restored afterwards."""
    flags = core.cfg.freeze, core.cfg.explore
    core.cfg.freeze, core.cfg.explore = True, sampled
    run = dict(sigma_cfg=sigma_cfg, num_trials=num_trials, num_landmarks=num_landmarks, epochs=epochs, seed=seed,
               simulator=simulator)
    rule = dataclasses.replace(sigma_cfg, landmark_pbt=dataclasses.replace(
        sigma_cfg.landmark_pbt, interval=sigma_cfg.rl.decision_interval))
    try:
        learned = rollout(core, tag="e", **run)
        out = {}
        for name in baselines:
            if name == "landmark_pbt":
                out[name] = rollout(name, **{**run, "sigma_cfg": rule}, tag="l")
            elif name == "blind":
                out[name] = rollout(core, tag="b", blind=True, **run)
            else:
                out[name] = rollout(name, **run)
    finally:
        core.cfg.freeze, core.cfg.explore = flags
    return learned, out


def paired_margin(base: RolloutResult, learned: RolloutResult) -> tuple[float, float]:
    """(mean, standard error) of base minus policy final error over the same members (mm; positive: the
    policy is better)."""
    diff = base.final_err - learned.final_err
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def warm_start(core: PolicyCore, sigma_cfg: SigmaConfig) -> None:
    """PPO on simulated populations before serving (a prior, refined by real trials online),
    with the experiment's own sigma range, step, stop gate, reward form and epoch cost."""
    cfg = core.cfg
    online = cfg
    core.cfg = dataclasses.replace(cfg, train_batch_rows=cfg.pretrain_batch_rows)
    try:
        for r in range(cfg.pretrain_rounds):
            rollout(core, sigma_cfg, cfg.pretrain_trials, cfg.pretrain_landmarks, cfg.pretrain_epochs, seed=r,
                    tag=f"pretrain{r}_", simulator=cfg.pretrain_simulator)
    finally:
        core.cfg = online
    core.end_all()
    log.info("policy warm-started on the %s simulator: %s updates", cfg.pretrain_simulator, core.stats["updates"])


__all__ = ["BASELINES", "RolloutResult", "evaluate_frozen", "make_trial", "member_rng", "paired_margin", "rollout",
           "task_seed", "warm_start"]
