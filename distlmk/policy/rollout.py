"""Populations of simulated trials driven through the real `RLSigma` client, in one process.

Used for the policy's warm start and to show that it learns: each trial is the simulated
trainer (`train.simulated`, the cost model in place of a network) with an `RLSigma`
controller whose transport reaches a `PolicyCore` in process (or a fixed baseline), so the
protocol is exactly the one live trials speak. Trials step in lock step, epoch by epoch,
as a population does, and the policy trains whenever a batch is ready.

A trial starts every landmark at one sigma (`sigma.init`, like a user's single best sigma)
and gets as population context a noisy estimate of each landmark's best sigma (what a
sigma grid on validation would tell, `reference_noise` in log units).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from distlmk.config import DataConfig, ExperimentConfig, SigmaConfig, TrainConfig
from distlmk.control.rl import RLSigma
from distlmk.policy.core import PolicyCore
from distlmk.policy.local import CoreTransport, FixedActionTransport
from distlmk.sim import LandmarkCostModel
from distlmk.train.simulated import SimulatedTrainer

log = logging.getLogger("distlmk.policy")


@dataclass
class RolloutResult:
    trial_returns: np.ndarray  # [T] sum of the trial row's rewards
    final_err: np.ndarray  # [T] mean final validation error (mm)
    sigma_distance: np.ndarray  # [T] mean |log sigma - log best sigma| at the end
    epochs_used: np.ndarray  # [T]


def make_trial(sigma_cfg: SigmaConfig, num_landmarks: int, epochs: int, seed: int, trial_id: str,
               transport, reference_noise: float = 0.2) -> SimulatedTrainer:
    """One simulated rl trial: cost model `seed`, population context = its best sigma, noised."""
    model = LandmarkCostModel(num_landmarks, seed, sigma_cfg.min, sigma_cfg.max)
    noise = np.random.default_rng([seed, 17]).normal(0, reference_noise, num_landmarks)
    reference = np.clip(np.exp(model.log_target + noise), sigma_cfg.min, sigma_cfg.max)
    rl = dataclasses.replace(sigma_cfg.rl, reference=reference.tolist())
    sigma = dataclasses.replace(sigma_cfg, method="rl", per_landmark=[], rl=rl)
    exp = ExperimentConfig(data=DataConfig(num_landmarks=num_landmarks), train=TrainConfig(epochs=epochs, seed=seed),
                           sigma=sigma)
    return SimulatedTrainer(exp, controller=RLSigma(sigma, num_landmarks, trial_id, transport), seed=seed)


def rollout(policy: PolicyCore | str, sigma_cfg: SigmaConfig, num_trials: int, num_landmarks: int, epochs: int,
            seed: int, tag: str = "t") -> RolloutResult:
    """Run `num_trials` simulated trials to completion. `policy` is a PolicyCore or a baseline
    name ("keep": never move nor stop; "random": random moves, never stop)."""
    if isinstance(policy, str):
        transport = FixedActionTransport(policy, seed)
    else:
        transport = CoreTransport(policy)
    trials = [make_trial(sigma_cfg, num_landmarks, epochs, seed * 100_003 + i, f"{tag}{i}", transport)
              for i in range(num_trials)]
    while not all(t.done for t in trials):
        for t in trials:
            if not t.done:
                t.run_epoch()
    return RolloutResult(
        trial_returns=np.array([t.controller.total_reward for t in trials]),
        final_err=np.array([t.model.err.mean() for t in trials]),
        sigma_distance=np.array([np.mean(np.abs(np.log(t.controller.sigma_values()) - t.model.log_target))
                                 for t in trials]),
        epochs_used=np.array([t.epoch for t in trials]),
    )


def warm_start(core: PolicyCore, sigma_cfg: SigmaConfig) -> None:
    """PPO on simulated populations before serving (a prior, refined by real trials online),
    with the experiment's own sigma range, step, stop gate and epoch cost."""
    cfg = core.cfg
    online = cfg
    core.cfg = dataclasses.replace(cfg, train_batch_rows=cfg.pretrain_batch_rows)
    try:
        for r in range(cfg.pretrain_rounds):
            rollout(core, sigma_cfg, cfg.pretrain_trials, cfg.pretrain_landmarks, cfg.pretrain_epochs, seed=r,
                    tag=f"pretrain{r}_")
    finally:
        core.cfg = online
    core.end_all()
    log.info("policy warm-started on the simulator: %s updates", core.stats["updates"])


__all__ = ["RolloutResult", "make_trial", "rollout", "warm_start"]
