"""How much a sigma controller can still gain over the landmark_pbt rule, in each simulator (issue 15).

A learned policy can beat the rule only by as much as the rule leaves on the table. This measures
that on held-out simulated tasks, member by member (the same landmarks, starts and noise):

- the rule as the learning test and `evaluate_frozen` run it (every decision, quantile 0.25,
  perturbation 0.8 or 1.25);
- the same rule with other random draws (`landmark_pbt.seed` 1: its own noise);
- the rule's own family: exploit interval 1/2/4 epochs, quantile 0.25/0.5, with or without the
  perturbation (a patient rule waits, a greedy one copies more);
- "keep" (each member's cold-start sigmas, never moved);
- the oracle: every member trains at each landmark's late optimum (the simulator's `log_target`)
  from the first epoch, which no controller can know.

How to run:
    python -m benchmarks.simulator_headroom [--simulator network] [--tasks 4] [--members 48]

Results to expect: `benchmarks/results/simulator_headroom_<simulator>.json`: per variant the mean
final error and the paired margin over the rule (mm, s.e., positive: better than the rule). In the
calibrated simulator the oracle is about 0.03 mm better than the rule and the best of the rule's
family about 0.01 mm: little is left for learning to win there (the cost model: 0.17 and 0.11 mm).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from benchmarks.common import write_result
from benchmarks.simulator_learning_curve import EPOCHS, SIGMA
from distlmk.config import SigmaConfig
from distlmk.policy.rollout import member_rng, rollout, task_seed
from distlmk.sim import SIMULATORS

HELD_OUT = 10_000  # the learning test's and the learning curve's held-out tasks start here


def oracle_err(sc: SigmaConfig, simulator: str, members: int, landmarks: int, epochs: int, seed: int) -> np.ndarray:
    """Final mean error [members] with every landmark at its late optimum from epoch 1 (the same task
    and member noise as `rollout`'s members)."""
    task = task_seed(seed)
    out = []
    for member in range(members):
        model = SIMULATORS[simulator](landmarks, task, sc.min, sc.max)
        model.rng = member_rng(task, member)
        best = np.clip(np.exp(model.log_target), sc.min, sc.max)
        for _ in range(epochs):
            model.step(best)
        out.append(model.err.mean())
    return np.array(out)


def rule_variant(sc: SigmaConfig, interval: int, quantile: float, perturb: tuple[float, ...]) -> SigmaConfig:
    return dataclasses.replace(sc, landmark_pbt=dataclasses.replace(
        sc.landmark_pbt, interval=interval, quantile=quantile, perturb=list(perturb)))


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--simulator", choices=sorted(SIGMA), default="network")
    ap.add_argument("--tasks", type=int, default=4, help="held-out tasks (populations)")
    ap.add_argument("--members", type=int, default=48)
    ap.add_argument("--landmarks", type=int, default=8)
    a = ap.parse_args()
    sc, epochs = SIGMA[a.simulator], EPOCHS[a.simulator]
    seeds = [HELD_OUT + i for i in range(a.tasks)]
    run = dict(num_trials=a.members, num_landmarks=a.landmarks, epochs=epochs, simulator=a.simulator)
    reference = rule_variant(sc, sc.rl.decision_interval, sc.landmark_pbt.quantile, tuple(sc.landmark_pbt.perturb))
    variants: dict[str, list[np.ndarray]] = {}

    def book(name: str, err: np.ndarray) -> None:
        variants.setdefault(name, []).append(err)

    for seed in seeds:
        book("rule", rollout("landmark_pbt", reference, seed=seed, tag="r", **run).final_err)
        other = dataclasses.replace(reference, landmark_pbt=dataclasses.replace(reference.landmark_pbt, seed=1))
        book("rule, other draws", rollout("landmark_pbt", other, seed=seed, tag="r", **run).final_err)  # its own noise
        for interval in (1, 2, 4):
            for quantile in (0.25, 0.5):
                for perturb in ((0.8, 1.25), (1.0,)):
                    if rule_variant(sc, interval, quantile, perturb) == reference:
                        continue
                    name = f"rule interval {interval}, quantile {quantile}, perturb {'/'.join(map(str, perturb))}"
                    book(name, rollout("landmark_pbt", rule_variant(sc, interval, quantile, perturb), seed=seed,
                                       tag="v", **run).final_err)
        book("keep", rollout("keep", sc, seed=seed, tag="k", **run).final_err)
        book("oracle", oracle_err(sc, a.simulator, a.members, a.landmarks, epochs, seed))
    rule = np.concatenate(variants["rule"])
    rows = []
    for name, errs in variants.items():
        err = np.concatenate(errs)
        diff = rule - err
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if diff.any() else 0.0
        rows.append({"variant": name, "final_err_mm": float(err.mean()), "margin_over_rule_mm": float(diff.mean()),
                     "margin_over_rule_se": float(diff.mean() / se) if se else 0.0})
        print(f"{name:<45} {err.mean():.4f} mm, over the rule {diff.mean():+.4f} mm ({rows[-1]['margin_over_rule_se']:+.1f} s.e.)")
    best_rule = max((r for r in rows if r["variant"].startswith("rule ")), key=lambda r: r["margin_over_rule_mm"])
    oracle = next(r for r in rows if r["variant"] == "oracle")
    write_result(f"simulator_headroom_{a.simulator}", {
        "simulator": a.simulator, "epochs": epochs, "landmarks": a.landmarks, "members": a.members,
        "held_out_tasks": seeds, "variants": rows,
        "oracle_over_rule_mm": oracle["margin_over_rule_mm"],
        "oracle_over_rule_pct": 100 * oracle["margin_over_rule_mm"] / float(rule.mean()),
        "best_rule_variant": best_rule["variant"], "best_rule_over_rule_mm": best_rule["margin_over_rule_mm"],
    })


if __name__ == "__main__":
    main()
