"""What learning from real trials added: the frozen rl population of two policies on the same held-out
draws, paired image by image (issue 15).

Two `distlmk compare` runs that share every stage but rl: the first evaluates the policy the
generations trained on real networks (`--policy-checkpoint shipped`, or a compare's own policy),
the second the warm start alone (`python -m benchmarks.warm_start_policy`), run with `--resume`
after moving the first run's `rl_d*` stages aside, so that only rl reruns. Each rl population's
best member on validation is taken per draw, as the arena does; the deltas use the arena's own
`paired_delta` (bootstrap over draws, then images; t-interval over draws), and landmark_pbt
(the hand-written rule on the same board) is the common reference.

How to run:
    python -m benchmarks.warm_start_vs_generations --real RUN_A --warm RUN_B
where RUN_A holds the first run's rl_d* stages and RUN_B is the comparison folder of the second.

Results to expect: `benchmarks/results/<--name>.json` (default `warm_start_vs_generations`) with the three deltas; on 3
draws none of them is expected to hold (a population's figure moves by up to 0.25 mm between runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import write_result
from benchmarks.rl_variants import rl_population
from distlmk.analysis.stats import paired_delta


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--real", required=True, help="folder with the rl_d* stages of the real-generations policy")
    ap.add_argument("--warm", required=True, help="comparison folder of the warm-start policy's run")
    ap.add_argument("--draws", type=int, nargs="+", default=[100, 101, 102], help="held-out draws")
    ap.add_argument("--split", default="test", help="test split")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--name", default="warm_start_vs_generations", help="the result file: benchmarks/results/<name>.json")
    args = ap.parse_args()
    real = rl_population(Path(args.real), "rl", args.draws, args.split)["test"]
    warm = rl_population(Path(args.warm), "rl", args.draws, args.split)["test"]
    rule = rl_population(Path(args.warm), "landmark_pbt", args.draws, args.split)["test"]
    deltas = {
        "real_generations_minus_warm_start": paired_delta(real, warm, "nested", args.reps),
        "real_generations_minus_landmark_pbt": paired_delta(real, rule, "nested", args.reps),
        "warm_start_minus_landmark_pbt": paired_delta(warm, rule, "nested", args.reps),
    }
    means = {name: float(sum(float(e.mean()) for e in errs.values()) / len(errs))
             for name, errs in (("real_generations", real), ("warm_start", warm), ("landmark_pbt", rule))}
    for name, d in deltas.items():
        print(f"{name}: {d['delta_mm']:+.3f} mm ({d['delta_pct']:+.1f} %), bootstrap "
              f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], t [{d['ci95_t'][0]:+.3f}, {d['ci95_t'][1]:+.3f}]: {d['sign']}")
    write_result(args.name, {"real": args.real, "warm": args.warm, "draws": args.draws,
                                               "split": args.split, "test_mre_mm": means, "deltas": deltas})


if __name__ == "__main__":
    main()
