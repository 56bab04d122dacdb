"""Lock-step rollouts of simulated trials against a policy, in one process.

Used to show that the central policy learns (tests) and to compare it with a uniformly
random policy on the same simulator seeds. The trial side is the real `TrialProtocol`,
the policy side the real `PolicyCore`; only the network is replaced by the cost model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distlmk.config import SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.protocol import StepRequest, TrialProtocol
from distlmk.train.simulated import DIAG_MM, LandmarkCostModel


@dataclass
class RolloutResult:
    trial_returns: np.ndarray  # [T] sum of the trial row's rewards
    final_err: np.ndarray  # [T] mean final error (mm)
    sigma_distance: np.ndarray  # [T] mean |log sigma - log best sigma| at the end
    epochs_used: np.ndarray  # [T]


def rollout(
    policy: PolicyCore | None,
    sigma_cfg: SigmaConfig,
    num_trials: int,
    num_landmarks: int,
    epochs: int,
    seed: int,
    rng: np.random.Generator | None = None,
    tag: str = "t",
) -> RolloutResult:
    """Run `num_trials` simulated trials to completion; policy None = uniformly random actions."""
    rng = rng or np.random.default_rng(seed)
    models = [
        LandmarkCostModel(num_landmarks, seed * 100_003 + i, sigma_cfg.min, sigma_cfg.max)
        for i in range(num_trials)
    ]
    protos = [TrialProtocol(num_landmarks, sigma_cfg) for _ in range(num_trials)]
    init_rng = np.random.default_rng([seed, 1])
    sigmas = [
        np.exp(init_rng.uniform(np.log(sigma_cfg.min), np.log(sigma_cfg.max), num_landmarks))
        for _ in range(num_trials)
    ]
    returns = np.zeros(num_trials)
    used = np.full(num_trials, epochs)
    alive = np.ones(num_trials, bool)
    interval = sigma_cfg.rl.decision_interval
    for epoch in range(1, epochs + 1):
        reqs, who = [], []
        for i in np.flatnonzero(alive):
            active = ~protos[i].ended
            sig = sigmas[i]
            err, loss = models[i].step(sig)
            if epoch % interval and epoch < epochs:
                continue
            p = protos[i]
            obs = p.observation(sig, err, loss, epoch, epochs, DIAG_MM)
            rows = p.active_rows()
            rewards = None if p.prev_err is None else p.rewards(err, epoch, sigma_cfg.rl.epoch_cost)
            if rewards is not None:
                returns[i] += rewards[-1]
            last = epoch >= epochs
            reqs.append(
                StepRequest(
                    f"{tag}{i}",
                    rows,
                    obs[rows],
                    None if rewards is None else rewards[rows],
                    np.zeros(len(rows), bool),
                    truncated=last,
                )
            )
            who.append((i, rows, err, active))
        if not reqs:
            continue
        if policy is not None:
            actions = policy.act(reqs)
        else:
            actions = [
                np.stack([rng.integers(0, 3, len(r.rows)), rng.integers(0, 2, len(r.rows))], 1)
                for r in reqs
            ]
        stop_reqs = []
        for (i, rows, err, _), acts, req in zip(who, actions, reqs, strict=True):
            p = protos[i]
            p.commit(err, epoch)
            if req.truncated:
                alive[i] = False
                continue
            sigmas[i], stop, newly = p.apply(sigmas[i], rows, acts, epoch / epochs)
            p.ended |= newly
            if stop:
                alive[i] = False
                used[i] = epoch
                obs = req.obs
                stop_reqs.append(
                    StepRequest(
                        req.trial_id,
                        rows,
                        obs,
                        np.zeros(len(rows), np.float32),
                        np.ones(len(rows), bool),
                    )
                )
        if stop_reqs and policy is not None:
            policy.act(stop_reqs)
        if policy is not None and policy.ready_to_train():
            policy.train()
    final = np.array([m.err.mean() for m in models])
    dist = np.array(
        [np.mean(np.abs(np.log(s) - m.log_target)) for s, m in zip(sigmas, models, strict=True)]
    )
    return RolloutResult(returns, final, dist, used)
