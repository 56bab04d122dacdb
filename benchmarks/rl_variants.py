"""rl settings side by side on the arena's held-out draws (issue 15): which warm start the policy keeps,
and whether the learned stop earns its place. Choices are made on validation.

Each run is a `distlmk compare` of the same config but one rl setting (for example
`policy.pretrain_simulator: network` or `cost_model`, `policy.pretrain_rounds: 0`,
`sigma.rl.allow_stop: true`), run with `--resume` in a folder whose non-rl stages are one earlier
arena run's, so that only the generations and rl run. Per run and held-out draw the rl
population's best member on validation is taken, as the arena does. The run chosen is the one with
the lowest mean validation MRE over draws; the test deltas (the arena's `paired_delta`: bootstrap
over draws then images, t-interval over draws) are reported beside it, never used to choose.
landmark_pbt (the first run's) is the common reference. Each run's held-out trial-epochs (its
members' epochs, summed) show what a stop saved.

How to run:
    python -m benchmarks.rl_variants --run none=DIR_A --run cost_model=DIR_B --run network=DIR_C \
        [--name warm_start_choice]

Results to expect: `benchmarks/results/<name>.json`: per run the validation and test MRE per draw,
the held-out trial-epochs, how often its members changed a landmark's sigma and how far they narrowed it, the learning curve of its generations, and every run's test delta
against the first run and against landmark_pbt. On 3 draws a population's figure moves by several
hundredths of a mm between runs of the same code, so deltas of that size are not expected to hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from distlmk import rundir
from distlmk import schema as S
from distlmk.analysis.comparison import best_member, per_image_errors
from distlmk.analysis.stats import paired_delta


def rl_population(root: Path, role: str, draws: list[int], split: str) -> dict:
    """A population stage `<role>_d<draw>` per draw: its best member on validation (val MRE, per-image
    test errors), the members' trial-epochs summed over draws, and how much its members moved sigma."""
    summaries = {d: rundir.read_summary(root / f"{role}_d{d}") for d in draws}
    best = {d: best_member(summaries[d], role, d) for d in draws}
    return {"val": {d: float(r[S.VAL_MRE]) for d, r in best.items()},
            "test": {d: per_image_errors(r, split) for d, r in best.items()},
            "trial_epochs": int(sum(int(s["epochs"].sum()) for s in summaries.values())),
            **sigma_moves([root / f"{role}_d{d}" for d in draws])}


def sigma_moves(stages: list[Path]) -> dict:
    """From each member's records: how often a landmark's sigma changed (per landmark and member) and
    how far it narrowed in all (sum of log-sigma decreases, per landmark and member), means over members."""
    import pandas as pd

    changes, narrowing = [], []
    for stage in stages:
        rec = pd.read_parquet(stage / rundir.RECORDS_FILE).sort_values("epoch")
        for _, r in rec.groupby("trial_id"):
            step = np.diff(np.log(np.array(r[S.SIGMA_USED].tolist(), float)), axis=0)  # [epochs - 1, L]
            changes.append(float((np.abs(step) > 1e-9).sum(axis=0).mean()))
            narrowing.append(float(np.maximum(-step, 0.0).sum(axis=0).mean()))
    return {"sigma_changes_per_landmark": float(np.mean(changes)),
            "sigma_narrowing_log_per_landmark": float(np.mean(narrowing))}


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                    help="a compare folder (OUT/<name>) and the name of its warm start; the first is the reference")
    ap.add_argument("--draws", type=int, nargs="+", default=[100, 101, 102], help="held-out draws")
    ap.add_argument("--split", default="test", help="test split")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--name", default="rl_variants", help="the result file: benchmarks/results/<name>.json")
    args = ap.parse_args()
    runs = dict(r.split("=", 1) for r in args.run)
    pops = {name: rl_population(Path(d), "rl", args.draws, args.split) for name, d in runs.items()}
    reference = next(iter(runs))
    rule = rl_population(Path(runs[reference]), "landmark_pbt", args.draws, args.split)
    out = {}
    for name, pop in pops.items():
        comparison = json.loads((Path(runs[name]) / "comparison.json").read_text())
        out[name] = {
            "folder": runs[name],
            "val_mre_mm": float(np.mean(list(pop["val"].values()))),
            "val_mre_mm_per_draw": [pop["val"][d] for d in args.draws],
            "test_mre_mm": float(np.mean([e.mean() for e in pop["test"].values()])),
            "test_mre_mm_per_draw": [float(pop["test"][d].mean()) for d in args.draws],
            "heldout_trial_epochs": pop["trial_epochs"],
            "sigma_changes_per_landmark": pop["sigma_changes_per_landmark"],
            "sigma_narrowing_log_per_landmark": pop["sigma_narrowing_log_per_landmark"],
            "learning_curve": comparison.get("learning_curve", []),
            "minus_landmark_pbt": paired_delta(pop["test"], rule["test"], "nested", args.reps),
        }
        if name != reference:
            out[name][f"minus_{reference}"] = paired_delta(pop["test"], pops[reference]["test"], "nested", args.reps)
    chosen = min(out, key=lambda n: out[n]["val_mre_mm"])
    for name, r in out.items():
        line = (f"{name}: val {r['val_mre_mm']:.3f}, test {r['test_mre_mm']:.3f} mm, {r['heldout_trial_epochs']} "
                f"trial-epochs, sigma changed {r['sigma_changes_per_landmark']:.2f} times per landmark, narrowed "
                f"{r['sigma_narrowing_log_per_landmark']:.3f} in log")
        for key in (f"minus_{reference}", "minus_landmark_pbt"):
            if key in r:
                d = r[key]
                line += (f"; {key} {d['delta_mm']:+.3f} mm [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] "
                         f"t [{d['ci95_t'][0]:+.3f}, {d['ci95_t'][1]:+.3f}] {d['sign']}")
        print(line)
    print(f"landmark_pbt: sigma changed {rule['sigma_changes_per_landmark']:.2f} times per landmark, narrowed "
          f"{rule['sigma_narrowing_log_per_landmark']:.3f} in log")
    print(f"chosen on validation: {chosen}")
    write_result(args.name, {
        "command": " ".join(["python -m benchmarks.rl_variants", *sys.argv[1:]]),  # the file is named by --name
        "draws": args.draws, "split": args.split, "reference": reference,
        "landmark_pbt_test_mre_mm": float(np.mean([e.mean() for e in rule["test"].values()])),
        "landmark_pbt_sigma_changes_per_landmark": rule["sigma_changes_per_landmark"],
        "landmark_pbt_sigma_narrowing_log_per_landmark": rule["sigma_narrowing_log_per_landmark"],
        "runs": out, "chosen_on_validation": chosen,
    })


if __name__ == "__main__":
    main()
