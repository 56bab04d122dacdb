"""How much simulated experience the policy needs to beat the landmark_pbt rule, in each simulator (issue 15).

The learning test (`tests/test_policy_learning.py`) trains for a fixed, short budget. This trains
PPO on cold simulated populations for longer and freezes a copy of the policy at several budgets.
Each frozen copy runs on held-out tasks (never trained on) against keep, "adopt" (ADOPT on every
landmark at every decision: the policy's copy of a top peer without its learned when) and the
landmark_pbt rule at the policy's decision interval. The comparison is paired, member by member, through the real
`RLSigma` client.

How to run:
    python -m benchmarks.simulator_learning_curve [--simulator network] [--seeds 0 1] [--rounds 10 20 40 80]

Results to expect: `benchmarks/results/simulator_learning_curve_<simulator>.json`. For each seed and
budget it holds the PPO updates, the transitions, the frozen policy's final error, and the paired
margins (mm, and in standard errors) over keep, adopt and landmark_pbt (positive: the policy is better),
and how far apart the members' sigmas end (`sigma_spread`, the sd of log sigma over members, mean over
landmarks; 0: the population herded onto one sigma per landmark) and how far they end from each
landmark's best (`sigma_distance`, mean |log sigma - log best sigma|), the policy's and each baseline's.
Each evaluation runs the frozen policy twice, greedy and drawing its actions (`sampled_…`), and leaves
the global generators as it found them, so the training curve does not depend on the evaluations.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from benchmarks.common import write_result
from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.rollout import evaluate_frozen, paired_margin, rollout

SIGMA = {  # each simulator at the range its learning test uses
    "cost_model": SigmaConfig(method="rl", init=2.5),
    "network": SigmaConfig(method="rl", init=2.5, min=0.7, max=8.0),
}
EPOCHS = {"cost_model": 12, "network": 8}


def evaluate(core: PolicyCore, sc: SigmaConfig, simulator: str, seed: int, members: int, landmarks: int) -> dict:
    """The frozen policy, greedy and drawing its actions (keys prefixed `sampled_`), against keep, adopt
    and landmark_pbt on held-out task 10_000 + seed (paired). The global generators are restored
    afterwards, so training goes on exactly as if nothing had been evaluated."""
    state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    out = {}
    for prefix, sampled in (("", False), ("sampled_", True)):
        learned, baselines = evaluate_frozen(core, sc, members, landmarks, EPOCHS[simulator], seed=10_000 + seed,
                                             simulator=simulator, baselines=("keep", "adopt", "landmark_pbt"), sampled=sampled)
        out |= {f"{prefix}final_err_mm": float(learned.final_err.mean()), f"{prefix}sigma_spread": learned.sigma_spread,
                f"{prefix}sigma_distance": float(learned.sigma_distance.mean())}
        for name, base in baselines.items():
            margin, se = paired_margin(base, learned)
            out[f"{prefix}margin_over_{name}_mm"] = margin
            # se 0: every member ended identical (a policy that became the baseline; None if not level)
            out[f"{prefix}margin_over_{name}_se"] = margin / se if se > 0 else (0.0 if margin == 0 else None)
            if not sampled:
                out[f"{name}_sigma_spread"] = base.sigma_spread
                out[f"{name}_sigma_distance"] = float(base.sigma_distance.mean())
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--simulator", choices=sorted(SIGMA), default="network")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--rounds", type=int, nargs="+", default=[10, 20, 40, 80], help="budgets (populations trained)")
    ap.add_argument("--members", type=int, default=48, help="held-out members per evaluation")
    ap.add_argument("--landmarks", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    sc, epochs = SIGMA[a.simulator], EPOCHS[a.simulator]
    curve = []
    for seed in a.seeds:
        core = PolicyCore(PolicyConfig(train_batch_rows=1024, minibatch_size=256, num_epochs=6, lr=1e-3, seed=seed))
        t0, done, trained_steps = time.perf_counter(), 0, 0
        for budget in sorted(a.rounds):
            before = core.stats["env_steps"]
            for it in range(done, budget):
                rollout(core, sc, 32, a.landmarks, epochs, seed=1000 * seed + it, tag=f"s{seed}u{it}_",
                        simulator=a.simulator)
            done, trained_steps = budget, trained_steps + core.stats["env_steps"] - before
            point = {"seed": seed, "rounds": budget, "updates": core.stats["updates"],
                     "transitions": trained_steps, "train_s": time.perf_counter() - t0,  # evaluations left out
                     **evaluate(core, sc, a.simulator, seed, a.members, a.landmarks)}
            print(point, flush=True)
            curve.append(point)
    write_result(f"simulator_learning_curve_{a.simulator}", {
        "simulator": a.simulator, "epochs": epochs, "landmarks": a.landmarks, "members": a.members, "curve": curve})


if __name__ == "__main__":
    main()
