"""Where the per-landmark headroom goes: a `distlmk compare` calibration run read landmark by landmark.

Why: `per_landmark_static` (one network retrained with each landmark's validation pick) must beat the
best fixed sigma by >= 5 % on unseen draws for the arena to mean something (issue 14). This reads a
finished comparison (calibration draws, never the held-out ones) and writes, per draw:
  - the grid: validation and test MRE of every fixed sigma;
  - best fixed (chosen on validation) and the retrained per-landmark network, on test;
  - `grid_per_landmark`: each landmark's test error taken from the grid network that the validation
    split picks for it (no retrain). It separates "the pick is worth something" from "the pick carries
    to a new network": if it wins while the retrain does not, the picks mostly select each network's
    own per-landmark luck, not a sigma that suits the landmark;
  - how often two draws pick the same sigma for a landmark.

How to run:
    distlmk compare --config tune_configs/calibration/headroom_batch2.yaml --out results
    python -m benchmarks.headroom results/headroom_batch2

Results to expect: benchmarks/results/<name>.json (headroom_batch2, headroom_spread2); the figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from distlmk import rundir
from distlmk import schema as S
from distlmk.population.selection import best_by_val, per_landmark_choice
from distlmk.stages import Role, fixed_variant

TEST_MRE, TEST_PER_LANDMARK = S.test_key("test", "mre_mm"), S.test_key("test", "per_landmark_mre_mm")


def read_headroom(root: Path) -> dict:
    """The grid and retrain summaries of a finished comparison, per draw; the picks are the arena's own
    (`per_landmark_choice` on the draw's validation split)."""
    comparison = json.loads((root / rundir.COMPARISON_JSON).read_text())
    sigma_of = {fixed_variant(s): float(s) for s in sorted(comparison["config"]["grid_sigmas"])}
    grid, retrain = rundir.read_summary(root / "grid"), rundir.read_summary(root / "retrain")
    draws, picks = {}, {}
    for draw, own in grid[grid[S.VARIANT].isin(list(sigma_of))].groupby(S.SEED):
        g = own.set_index(S.VARIANT).loc[list(sigma_of)]  # one row per grid sigma, in sigma order
        per_landmark, pick = per_landmark_choice(own, sigma_of)
        test = np.stack(g[TEST_PER_LANDMARK])  # [G, L]
        rows = [list(sigma_of).index(v) for v in pick]
        best = best_by_val(own, list(sigma_of))
        best_test = float(g.loc[best, TEST_MRE])
        grid_pl = float(test[rows, np.arange(test.shape[1])].mean())
        pls = retrain[(retrain[S.SEED] == draw) & (retrain[S.VARIANT] == str(Role.PER_LANDMARK_STATIC))]
        retrained = float(pls[TEST_MRE].iloc[0]) if len(pls) else None
        picks[int(draw)] = np.array(per_landmark)
        draws[int(draw)] = {
            "grid_sigmas": list(sigma_of.values()),
            "grid_val_mre_mm": g[S.VAL_MRE].round(4).tolist(),
            "grid_test_mre_mm": g[TEST_MRE].round(4).tolist(),
            "best_fixed_sigma": sigma_of[best],
            "best_fixed_test_mre_mm": round(best_test, 4),
            "per_landmark_sigma": per_landmark,
            "per_landmark_static_test_mre_mm": None if retrained is None else round(retrained, 4),
            "per_landmark_static_vs_best_pct": None if retrained is None else round(100 * (retrained / best_test - 1), 2),
            "grid_per_landmark_test_mre_mm": round(grid_pl, 4),
            "grid_per_landmark_vs_best_pct": round(100 * (grid_pl / best_test - 1), 2),
        }
    pairs = {f"{a}-{b}": float(np.mean(picks[a] == picks[b])) for a, b in combinations(sorted(picks), 2)}
    return {"run": str(root), "config": comparison["config"], "draws": draws,
            "pick_agreement": {"pairs": pairs, "mean": float(np.mean(list(pairs.values()))) if pairs else None},
            "headroom": comparison["headroom"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("comparison", help="a finished `distlmk compare` folder (OUT/<name>)")
    args = p.parse_args()
    root = Path(args.comparison)
    out = read_headroom(root)
    for d, r in out["draws"].items():
        print(f"draw {d}: best fixed σ {r['best_fixed_sigma']:g} {r['best_fixed_test_mre_mm']:.3f} mm, "
              f"per_landmark_static {r['per_landmark_static_vs_best_pct']:+.1f} %, "
              f"grid per landmark {r['grid_per_landmark_vs_best_pct']:+.1f} %")
    write_result(root.name if root.name.startswith("headroom") else f"headroom_{root.name}", out)


if __name__ == "__main__":
    main()
