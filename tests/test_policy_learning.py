"""The central policy really learns: PPO on the simulated population beats a random policy."""

import numpy as np
import torch

from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.rollout import rollout

L, EPOCHS, EVAL_TRIALS = 8, 12, 64


def train_policy(seed: int, updates_rounds: int = 30) -> PolicyCore:
    core = PolicyCore(
        PolicyConfig(train_batch_rows=1024, minibatch_size=256, num_epochs=6, lr=1e-3, seed=seed)
    )
    for it in range(updates_rounds):
        rollout(
            core,
            SigmaConfig(method="rl"),
            32,
            L,
            EPOCHS,
            seed=1000 * seed + it,
            tag=f"s{seed}u{it}_",
        )
    return core


def test_ppo_policy_beats_uniform_random_on_simulator(report_line):
    torch.set_num_threads(1)
    sc = SigmaConfig(method="rl")
    margins, sigma_gain = [], []
    for seed in (0, 1, 2):
        eval_seed = 10_000 + seed
        untrained = PolicyCore(PolicyConfig(seed=seed, explore=False))
        before = rollout(untrained, sc, EVAL_TRIALS, L, EPOCHS, seed=eval_seed, tag="b")
        core = train_policy(seed)
        assert core.stats["updates"] >= 20
        core.cfg.explore = False
        learned = rollout(core, sc, EVAL_TRIALS, L, EPOCHS, seed=eval_seed, tag="e")
        random = rollout(
            None, sc, EVAL_TRIALS, L, EPOCHS, seed=eval_seed, rng=np.random.default_rng(seed)
        )
        margin = learned.trial_returns.mean() - random.trial_returns.mean()
        se = np.sqrt(
            learned.trial_returns.var() / EVAL_TRIALS + random.trial_returns.var() / EVAL_TRIALS
        )
        report_line(
            f"RL learning, seed {seed}: return learned {learned.trial_returns.mean():.3f} vs random "
            f"{random.trial_returns.mean():.3f} (margin {margin:.3f}, {margin / se:.1f} s.e.); "
            f"|log sigma - log best| learned {learned.sigma_distance.mean():.3f}, untrained "
            f"{before.sigma_distance.mean():.3f}, random {random.sigma_distance.mean():.3f}; "
            f"final error learned {learned.final_err.mean():.2f} mm vs random {random.final_err.mean():.2f} mm"
        )
        margins.append(margin / se)
        sigma_gain.append(before.sigma_distance.mean() - learned.sigma_distance.mean())
        assert margin > 0.5 and margin > 4 * se
        assert learned.final_err.mean() < random.final_err.mean()
    # the sigma moves themselves were learned, not only "do not stop"
    assert np.mean(sigma_gain) > 0.05 and min(sigma_gain) > 0
    report_line(f"RL learning: margins over the random policy in standard errors: {np.round(margins, 1).tolist()}")
