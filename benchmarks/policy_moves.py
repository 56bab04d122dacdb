"""What the learned policy does in the calibrated population simulator: its moves by progress and standing
(issue 15).

The learning test's policy (PPO on 10 simulated cold populations of 32 members, seed 1) is frozen and
run greedy on the held-out task through the real `RLSigma` client, and every landmark row's move is
counted by the quarter of training it falls in and by the member's standing on that landmark (its
error against its peers' median, the board's ERR_VS_MEDIAN: better / near / worse, ±2 %). Set beside
"adopt" (ADOPT at every decision) and the rule, this says what learning added beyond the action.

How to run:
    python -m benchmarks.policy_moves [--seed 1] [--rounds 10]

Results to expect: `benchmarks/results/policy_moves.json`: the share of each move per (quarter,
standing), and the final error of the policy, adopt and landmark_pbt on the held-out task. Seed 1:
early on the policy raises sigma, most where a member is worse than its peers, and from the
middle of training it adopts a top peer's sigma.
"""

from __future__ import annotations

import argparse
import collections

import torch

from benchmarks.common import write_result
from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.core import PolicyCore
from distlmk.policy.rollout import evaluate_frozen, paired_margin, rollout
from distlmk.protocol import NO_ACTION, ActionPart, Feature, Move

SIGMA = SigmaConfig(method="rl", init=2.5, min=0.7, max=8.0)  # as the learning test's calibrated case
EPOCHS, LANDMARKS, MEMBERS = 8, 8, 48


def count_moves(act, counts: collections.defaultdict):
    """`PolicyCore.act` that also tallies each landmark row's move by (quarter of training, standing)."""

    def counted(requests):
        answers = act(requests)
        for request, actions in zip(requests, answers, strict=True):
            for obs, move in zip(request.obs, actions[:, ActionPart.MOVE], strict=True):
                if obs[Feature.IS_TRIAL_ROW] > 0.5 or move == NO_ACTION:
                    continue
                rel = float(obs[Feature.ERR_VS_MEDIAN])
                standing = "better" if rel < -0.02 else "worse" if rel > 0.02 else "near"
                quarter = min(int(float(obs[Feature.PROGRESS]) * 4), 3)
                counts[(quarter, standing)][Move(int(move)).name.lower()] += 1
        return answers

    return counted


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    core = PolicyCore(PolicyConfig(train_batch_rows=1024, minibatch_size=256, num_epochs=6, lr=1e-3, seed=a.seed))
    for it in range(a.rounds):
        rollout(core, SIGMA, 32, LANDMARKS, EPOCHS, seed=1000 * a.seed + it, tag=f"s{a.seed}u{it}_", simulator="network")
    counts: collections.defaultdict = collections.defaultdict(collections.Counter)
    core.act = count_moves(core.act, counts)  # the frozen evaluation counts its moves (the baselines use no core)
    learned, base = evaluate_frozen(core, SIGMA, MEMBERS, LANDMARKS, EPOCHS, seed=10_000 + a.seed,
                                    simulator="network", baselines=("adopt", "landmark_pbt"))
    adopt, rule = base["adopt"], base["landmark_pbt"]
    shares = {}
    for (quarter, standing), c in sorted(counts.items()):
        n = sum(c.values())
        shares[f"q{quarter + 1}_{standing}"] = {"decisions": n, **{m: round(v / n, 3) for m, v in sorted(c.items())}}
        print(f"quarter {quarter + 1}, {standing}: {n} decisions, {shares[f'q{quarter + 1}_{standing}']}")
    out = {"seed": a.seed, "rounds": a.rounds, "updates": core.stats["updates"], "move_shares": shares,
           "final_err_mm": {"policy": float(learned.final_err.mean()), "adopt": float(adopt.final_err.mean()),
                            "landmark_pbt": float(rule.final_err.mean())},
           "margin_over_adopt_mm": paired_margin(adopt, learned)[0],
           "margin_over_landmark_pbt_mm": paired_margin(rule, learned)[0]}
    print(out["final_err_mm"])
    write_result("policy_moves", out)


if __name__ == "__main__":
    main()
