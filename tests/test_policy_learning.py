"""The central policy really learns: PPO on simulated populations, then frozen on held-out
tasks, beats the fair baselines through the same `RLSigma` client live trials use.

Baselines: keep every sigma and never stop (what the trial would do without a policy), random
moves without stopping, ADOPT on every landmark at every decision (the policy's copy of a top
peer without the learned when), and the landmark_pbt rule on the same board at the policy's decision
interval (per landmark, bottom members take a top member's sigma times a perturbation): the
rule a learned policy must beat to justify learning. Each population starts cold (a Latin-hypercube design of
sigmas per landmark) and shares one board; no grid's answer is given. The policy must learn
from the default peer rewards alone to read the board (where the peers that do best on a
landmark put its sigma) and its own history. Populations of different policies have the same
members (task, start, noise), so errors are compared member by member; returns are not (a
peer reward is relative to the member's own population). The same frozen policy with every
board answer neutral must do worse too: it uses the board (its features, and ADOPT's target, which
without a board keeps), not only its own history.

Two simulators (`distlmk.sim`): the cost model, and the population simulator calibrated on real
runs (coupled landmarks, sigma effects with memory, a cost for narrowing sigma, optima that move
during training). In both the policy must beat every baseline, the landmark_pbt rule included (in
the cost model "adopt" is reported, not asserted: there the policy converges to it). In the calibrated
one it beats the rule by 0.156 mm at this seed, over 96 held-out members (benchmarks/
simulator_learning_curve.py: by 0.12-0.33 mm at 19 of 20 points of 5 seeds x 4 budgets, and 0.09 mm
worse at one). It can because ADOPT takes a top peer drawn per member, as the rule does (with the
top quantile's mean instead, a population herded onto one sigma per landmark),
and because it learned when to move: it raises sigma early where a member trails its peers, and later
copies a top peer or keeps its sigma, while the rule's copies, often to a narrower sigma, pay the simulator's narrowing cost
at every decision (benchmarks/policy_moves.py).
One seed each keeps the suite short; `benchmarks/` holds the larger runs.
"""

import torch

from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.rollout import RolloutResult, evaluate_frozen, paired_margin, rollout

L, EVAL_TRIALS = 8, 96
LABELS = {"blind": "the same policy without its board",  # board features all 0
          "adopt": "ADOPT at every decision"}


def train_then_evaluate(sc: SigmaConfig, simulator: str, seed: int, rounds: int, epochs: int
                        ) -> tuple[RolloutResult, dict[str, RolloutResult]]:
    """PPO on `rounds` simulated populations, then the frozen greedy policy and the baselines on a
    held-out task (never trained on), member by member."""
    torch.set_num_threads(1)
    core = PolicyCore(PolicyConfig(train_batch_rows=1024, minibatch_size=256, num_epochs=6, lr=1e-3, seed=seed))
    for it in range(rounds):
        rollout(core, sc, 32, L, epochs, seed=1000 * seed + it, tag=f"s{seed}u{it}_", simulator=simulator)
    assert core.stats["updates"] >= rounds  # at least one PPO update per population on average
    updates = core.stats["updates"]
    learned, baselines = evaluate_frozen(core, sc, EVAL_TRIALS, L, epochs, seed=10_000 + seed, simulator=simulator)
    assert core.stats["updates"] == updates  # frozen: evaluation did not train it
    return learned, baselines


def margins(learned: RolloutResult, baselines: dict[str, RolloutResult], label: str, report_line) -> dict:
    """Paired margins (baseline minus policy final error, mm) and their standard errors, reported."""
    out = {}
    for name, base in baselines.items():
        margin, se = paired_margin(base, learned)
        report_line(f"RL learning, {label}: final error {learned.final_err.mean():.2f} vs {LABELS.get(name, name)} "
                    f"{base.final_err.mean():.2f} mm (paired margin {margin:.3f}, {margin / max(se, 1e-12):.1f} s.e.); "
                    f"|log sigma - log best| {learned.sigma_distance.mean():.3f} vs {base.sigma_distance.mean():.3f}")
        out[name] = (margin, se, base.sigma_distance.mean())
    return out


def test_frozen_policy_beats_keep_random_and_landmark_pbt_on_heldout_seeds(report_line):
    learned, baselines = train_then_evaluate(SigmaConfig(method="rl", init=2.5), "cost_model", seed=0, rounds=14,
                                             epochs=12)
    for name, (margin, se, distance) in margins(learned, baselines, "cost model", report_line).items():
        if name == "adopt":  # reported: in the cost model the policy converges to ADOPT at every decision
            continue
        assert margin > 4 * se, name
        assert learned.sigma_distance.mean() < distance, name


def test_frozen_policy_beats_keep_random_and_landmark_pbt_in_the_calibrated_population_simulator(report_line):
    sc = SigmaConfig(method="rl", init=2.5, min=0.7, max=8.0)  # the arena's sigma range, 8 epochs as calibrated
    learned, baselines = train_then_evaluate(sc, "network", seed=1, rounds=10, epochs=8)
    for name, (margin, se, distance) in margins(learned, baselines, "population simulator", report_line).items():
        assert margin > 4 * se, name
        assert learned.sigma_distance.mean() < distance, name
