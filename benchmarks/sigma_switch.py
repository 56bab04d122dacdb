"""How a real network answers a changed sigma, and what the population simulator's `memory` makes of it
(issue 15).

Why: every sigma controller changes sigma during training, and the population simulator, fitted to
fixed-sigma grids, cannot see what a change does: its `memory` (the share of a log-sigma change the
network answers per epoch) was set, not fitted, and it had no cost for a change at all. A policy
warm-started in that simulator moved sigma often and did worse on real networks than one that
barely moved. These runs fit the two constants a change has: `memory` and `shock` (the share of the
shared network's progress that narrowing the targets undoes).

The real runs (`tune_configs/calibration/sigma_switch.yaml`) switch every landmark's sigma once, at
the middle epoch, 1.5 -> 4 and 4 -> 1.5, on the calibration grid's draws with the grid's seeds, so
each pairs with the grid's constant runs at either sigma (the same data and network initialisation;
its first half should read as the constant run at the starting sigma). Per direction and epoch this
compares the switched run's validation MRE with the constant run at the end sigma (log ratio, mean
over draws): 0 after the switch means the network answered the change at once; above 0, a switch
costs. The same runs are simulated (48 simulated networks per draw, common random numbers) on a
grid of (`memory`, `shock`), and the pair whose log ratios after the switch fit the real ones best
(least squares over both directions) is reported beside the committed pair and the one before
(memory 0.5, no shock).

How to run:
    distlmk search --config tune_configs/calibration/sigma_switch.yaml --out results
    python -m benchmarks.sigma_switch results/sigma_switch --grid results/simulator_grid

Results to expect: `benchmarks/results/sigma_switch.json`: the real and simulated log ratios by
epoch, the fitted pair and its misfit against the committed pair's and the old one's. Real networks
pay for a narrowing: switched 4 -> 1.5, the error the epoch after reads 3.7 times the constant run's
and is still 1.7 times it 4 epochs later, while 1.5 -> 4 costs nothing. Two draws of one network
each: the real curves carry several hundredths of noise in log.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_result
from distlmk.sim.network_model import CALIBRATED, NetworkCostModel

MEMORIES = (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SHOCKS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
BEFORE = (0.5, 0.0)  # (memory, shock) before these runs: memory set by hand, no shock
SIM_NETWORKS = 48  # simulated networks per real draw


def mre_by_epoch(rec: pd.DataFrame) -> dict[int, np.ndarray]:
    """Records of one run per draw -> {draw: per-landmark validation error [E, L]}."""
    out = {}
    for seed, r in rec.groupby("seed"):
        r = r.sort_values("epoch")
        out[int(seed)] = np.array(r["val/per_landmark_mre_mm"].tolist(), float)
    return out


def real_runs(switch_dir: Path, grid_dir: Path) -> dict[tuple[float, float], dict[str, dict[int, np.ndarray]]]:
    """{(start, end): {"switch", "start", "end": {draw: err [E, L]}}} from the two searches' records."""
    sw = pd.read_parquet(switch_dir / "records.parquet")
    grid = pd.read_parquet(grid_dir / "records.parquet")
    grid = grid[grid["method"] == "fixed"].copy()
    grid["sigma0"] = grid["sigma/used"].map(lambda v: float(v[0]))
    out = {}
    for _, r in sw[sw["method"] == "schedule"].groupby("variant"):
        used = np.array(r.sort_values("epoch")["sigma/used"].iloc[[0, -1]].tolist())
        start, end = float(used[0, 0]), float(used[1, 0])
        runs = {"switch": mre_by_epoch(r)}
        for key, s in (("start", start), ("end", end)):
            const = grid[np.isclose(grid["sigma0"], s)]
            if const.empty:
                raise ValueError(f"{grid_dir}: no constant run at sigma {s:g} in the grid; the switch pairs with it")
            runs[key] = mre_by_epoch(const)
        out[(start, end)] = runs
    return out


def log_ratios(runs: dict[str, dict[int, np.ndarray]]) -> dict[str, list[float]]:
    """Per epoch, mean over draws of log(MRE switched / MRE constant) against the end and start sigma."""
    draws = sorted(runs["switch"])
    mre = {k: np.array([runs[k][d].mean(axis=1) for d in draws]) for k in runs}  # [D, E]
    return {f"vs_{k}": np.log(mre["switch"] / mre[k]).mean(axis=0).round(4).tolist() for k in ("end", "start")}


def simulated_runs(start: float, end: float, epochs: int, num_landmarks: int, draws: int, memory: float,
                   shock: float, sigma_range: tuple[float, float]) -> dict[str, dict[int, np.ndarray]]:
    """The same three runs on simulated networks (network d: the same landmarks and noise in all three)."""
    half = (epochs - 1) / 2  # the step schedule's switch: epoch index i trains at start while i / (E - 1) < 0.5
    plans = {"switch": [start if i < half else end for i in range(epochs)], "start": [start] * epochs,
             "end": [end] * epochs}
    params = CALIBRATED.replace(memory=memory, shock=shock)
    out = {}
    for name, sigmas in plans.items():
        out[name] = {}
        for d in range(draws):
            m = NetworkCostModel(num_landmarks, 5000 + d, *sigma_range, params=params)
            out[name][d] = np.array([m.step(np.full(num_landmarks, s))[0] for s in sigmas])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("switch_dir", help="the experiment folder of the switch runs (records.parquet)")
    ap.add_argument("--grid", required=True, help="the experiment folder of the calibration grid")
    ap.add_argument("--sigma-range", type=float, nargs=2, default=[0.7, 8.0], help="the arena's sigma.min, max")
    a = ap.parse_args()
    real = real_runs(Path(a.switch_dir), Path(a.grid))
    committed = (CALIBRATED.memory, CALIBRATED.shock)
    pairs = sorted({(m, s) for m in MEMORIES for s in SHOCKS} | {committed, BEFORE})
    result: dict = {"committed": {"memory": committed[0], "shock": committed[1]}, "directions": {}}
    misfit = dict.fromkeys(pairs, 0.0)
    for (start, end), runs in sorted(real.items()):
        epochs, num_landmarks = next(iter(runs["switch"].values())).shape
        first = int(np.ceil((epochs - 1) / 2))  # epochs (0-based) trained at the end sigma
        mine = log_ratios(runs)
        sims = {p: log_ratios(simulated_runs(start, end, epochs, num_landmarks, SIM_NETWORKS, *p,
                                             tuple(a.sigma_range))) for p in pairs}
        for p, s in sims.items():
            misfit[p] += float(np.sum((np.array(s["vs_end"][first:]) - np.array(mine["vs_end"][first:])) ** 2))
        result["directions"][f"{start:g}->{end:g}"] = {
            "real": mine, "real_draws": sorted(runs["switch"]),
            "first_half_vs_start_max_abs": float(np.max(np.abs(mine["vs_start"][:first]))),
            "simulated_committed": sims[committed], "simulated_before": sims[BEFORE],
        }
        print(f"{start:g} -> {end:g}: real log(switched / constant end) by epoch {mine['vs_end']}; simulated, "
              f"committed {committed}: {sims[committed]['vs_end']}; before {BEFORE}: {sims[BEFORE]['vs_end']}")
    best = min(misfit, key=misfit.get)
    result |= {"misfit": [{"memory": m, "shock": s, "misfit": round(v, 5)} for (m, s), v in misfit.items()],
               "fitted": {"memory": best[0], "shock": best[1], "misfit": misfit[best]},
               "misfit_committed": misfit[committed], "misfit_before": misfit[BEFORE]}
    print(f"best fit: memory {best[0]}, shock {best[1]} (misfit {misfit[best]:.4f}); committed {committed}: "
          f"{misfit[committed]:.4f}; before {BEFORE}: {misfit[BEFORE]:.4f}")
    write_result("sigma_switch", result)


if __name__ == "__main__":
    main()
