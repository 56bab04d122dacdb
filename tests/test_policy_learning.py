"""The central policy really learns: PPO on simulated populations, then frozen on held-out
tasks, beats the fair baselines through the same `RLSigma` client live trials use.

Baselines: keep every sigma and never stop (what the trial would do without a policy), random
moves without stopping, and the landmark_pbt rule on the same board at the policy's decision
interval (per landmark, bottom members take a top member's sigma times a perturbation): the
rule a learned policy must beat to justify learning. Each population starts cold (a Latin-hypercube design of
sigmas per landmark) and shares one board; no grid's answer is given. The policy must learn
from the default peer rewards alone to read the board (where the peers that do best on a
landmark put its sigma) and its own history. Populations of different policies have the same
members (task, start, noise), so errors are compared member by member; returns are not (a
peer reward is relative to the member's own population). The same frozen policy with every
board answer neutral must do worse too: it reads the board, not only its own history.
"""

import dataclasses

import numpy as np
import torch

from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.rollout import rollout

L, EPOCHS, EVAL_TRIALS, ROUNDS = 8, 12, 48, 14


def test_frozen_policy_beats_keep_random_and_landmark_pbt_on_heldout_seeds(report_line):
    torch.set_num_threads(1)
    sc = SigmaConfig(method="rl", init=2.5)
    for seed in (0, 1):
        core = PolicyCore(PolicyConfig(train_batch_rows=1024, minibatch_size=256, num_epochs=6, lr=1e-3, seed=seed))
        for it in range(ROUNDS):
            rollout(core, sc, 32, L, EPOCHS, seed=1000 * seed + it, tag=f"s{seed}u{it}_")
        assert core.stats["updates"] >= 40
        core.cfg.freeze, core.cfg.explore = True, False  # frozen, greedy
        updates = core.stats["updates"]
        heldout = 10_000 + seed  # never seen in training
        learned = rollout(core, sc, EVAL_TRIALS, L, EPOCHS, seed=heldout, tag="e")
        blind = rollout(core, sc, EVAL_TRIALS, L, EPOCHS, seed=heldout, tag="b", blind=True)  # board features all 0
        keep = rollout("keep", sc, EVAL_TRIALS, L, EPOCHS, seed=heldout)
        random = rollout("random", sc, EVAL_TRIALS, L, EPOCHS, seed=heldout)
        rule = dataclasses.replace(sc, landmark_pbt=dataclasses.replace(sc.landmark_pbt, interval=sc.rl.decision_interval))
        landmark_pbt = rollout("landmark_pbt", rule, EVAL_TRIALS, L, EPOCHS, seed=heldout, tag="l")
        assert core.stats["updates"] == updates  # frozen: evaluation did not train it
        for name, base in (("keep", keep), ("random", random), ("landmark_pbt", landmark_pbt),
                           ("the same policy without its board", blind)):
            diff = base.final_err - learned.final_err  # paired: the same members
            se = diff.std(ddof=1) / np.sqrt(EVAL_TRIALS)
            report_line(f"RL learning, seed {seed}: final error {learned.final_err.mean():.2f} vs {name} "
                        f"{base.final_err.mean():.2f} mm (paired margin {diff.mean():.3f}, {diff.mean() / se:.1f} s.e.); "
                        f"|log sigma - log best| {learned.sigma_distance.mean():.3f} vs {base.sigma_distance.mean():.3f}")
            assert diff.mean() > 4 * se
            assert learned.sigma_distance.mean() < base.sigma_distance.mean()
