"""Fit the population simulator (`distlmk.sim.network_model`) to real grid runs on training draws.

Why: a warm start teaches what its simulator shows. This fits `SimulatorParams` to the
validation curves of real networks trained at each grid sigma, and writes, side by side, the
real and the simulated statistics that the fit was asked to match (and the cost model's, for
comparison), so the calibration can be read, not just trusted.

Matched statistics, all computed the same way on real records and on simulated networks:
- the mean per-landmark validation error by (grid sigma, epoch), in log;
- the spread over landmarks of each landmark's error at its best grid sigma (10/50/90 %);
- how often a landmark's best grid sigma at an early epoch is its final one;
- the epoch-to-epoch noise of a network's validation MRE (late epochs);
- the share of landmarks whose final best grid sigma is each grid value;
- the train loss of each grid sigma relative to sigma 1 at the last epoch, and its fall from the
  first to the last epoch.

How to run (the grid: tune_configs/calibration/simulator_grid.yaml, training draws 0 and 1):
    distlmk search --config tune_configs/calibration/simulator_grid.yaml --out results
    python -m benchmarks.simulator_calibration results/simulator_grid [--no-fit]

Results to expect: `benchmarks/results/simulator_calibration.json` with the fitted parameters,
the real/simulated/cost-model tables, and the fit's residual (rms of log error by sigma and epoch).
`--no-fit` evaluates the committed `CALIBRATED` parameters only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_result
from distlmk.sim.cost_model import LandmarkCostModel
from distlmk.sim.network_model import CALIBRATED, NetworkCostModel, SimulatorParams

START = SimulatorParams()  # the fit starts from the dataclass's defaults

FITTED = ("start_err_mm", "rate", "ease_slope", "wide_gain", "onset", "floor_min_mm", "floor_span_mm", "target_lo",
          "target_span", "target_noise", "curvature", "network_noise", "landmark_noise", "loss_floor", "loss_slope")
SIM_NETWORKS = 48  # simulated draws per grid sigma (common random numbers across the fit)


def real_curves(exp_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid records -> (sigmas [S], val error [S, D, E, L], train loss [S, D, E, L]); D draws, E epochs."""
    rec = pd.read_parquet(exp_dir / "records.parquet")
    rec = rec[rec["method"] == "fixed"].copy()
    rec["sigma0"] = rec["sigma/used"].map(lambda v: float(v[0]))
    sigmas = np.array(sorted(rec["sigma0"].unique()))
    draws = sorted(rec["seed"].unique())
    epochs = int(rec["epoch"].max())
    num_landmarks = len(rec["val/per_landmark_mre_mm"].iloc[0])
    err = np.full((len(sigmas), len(draws), epochs, num_landmarks), np.nan)
    loss = np.full_like(err, np.nan)
    for _, r in rec.iterrows():
        i, j, e = int(np.searchsorted(sigmas, r["sigma0"])), draws.index(r["seed"]), int(r["epoch"]) - 1
        err[i, j, e] = r["val/per_landmark_mre_mm"]
        loss[i, j, e] = r["train/loss_per_landmark"]
    if np.isnan(err).any():
        raise ValueError(f"{exp_dir}: a grid trial did not finish every epoch; rerun the grid")
    return sigmas, err, loss


def simulated_curves(model_cls, sigmas: np.ndarray, draws: int, epochs: int, num_landmarks: int,
                     sigma_range: tuple[float, float], **kw) -> tuple[np.ndarray, np.ndarray]:
    """The same grid on simulated networks: draw d has the same landmarks at every sigma, as a data draw does."""
    err = np.empty((len(sigmas), draws, epochs, num_landmarks))
    loss = np.empty_like(err)
    for i, s in enumerate(sigmas):
        for d in range(draws):
            m = model_cls(num_landmarks, 1000 + d, *sigma_range, **kw)
            for e in range(epochs):
                err[i, d, e], loss[i, d, e] = m.step(np.full(num_landmarks, s))
    return err, loss


def statistics(sigmas: np.ndarray, err: np.ndarray, loss: np.ndarray) -> dict:
    """The matched statistics of one grid (real or simulated): err, loss [S, D, E, L]."""
    epochs = err.shape[2]
    best_final = err[:, :, -1].argmin(0)  # [D, L]
    at_best = np.take_along_axis(err[:, :, -1], best_final[None], 0)[0]  # [D, L]
    agree = {str(e + 1): float(np.mean(err[:, :, e].argmin(0) == best_final)) for e in range(1, epochs - 1)}
    mre = err.mean(-1)  # [S, D, E]
    late = np.diff(np.log(mre[:, :, epochs // 2:]), axis=-1)
    late = late - late.mean(-1, keepdims=True)  # the trend taken out
    loss_mean = loss.mean((1, 3))  # [S, E]
    return {
        "mean_err_mm_by_sigma_epoch": err.mean((1, 3)).round(4).tolist(),  # [S][E]
        "best_sigma_err_mm_q10_50_90": np.quantile(at_best, [0.1, 0.5, 0.9]).round(4).tolist(),
        "best_sigma_share": (np.bincount(best_final.ravel(), minlength=len(sigmas)) / best_final.size).round(4).tolist(),
        "early_pick_agrees_with_final": agree,
        "late_epoch_noise_sd": float(late.std()),
        "loss_vs_sigma1_last_epoch": (loss_mean[:, -1] / loss_mean[0, -1]).round(3).tolist(),
        "loss_last_over_first": (loss_mean[:, -1] / loss_mean[:, 0]).round(3).tolist(),
    }


def misfit(real: dict, sim: dict) -> float:
    """Squared log differences of the matched statistics (each family weighted once)."""
    def sq(a, b):
        return float(np.mean((np.log(np.asarray(a)) - np.log(np.asarray(b))) ** 2))
    agree = np.array(list(real["early_pick_agrees_with_final"].values()))
    agree_sim = np.array(list(sim["early_pick_agrees_with_final"].values()))
    return (sq(real["mean_err_mm_by_sigma_epoch"], sim["mean_err_mm_by_sigma_epoch"])
            + sq(real["best_sigma_err_mm_q10_50_90"], sim["best_sigma_err_mm_q10_50_90"])
            + float(np.mean((agree - agree_sim) ** 2))
            + float(np.mean((np.asarray(real["best_sigma_share"]) - np.asarray(sim["best_sigma_share"])) ** 2))
            + (math.log(real["late_epoch_noise_sd"]) - math.log(max(sim["late_epoch_noise_sd"], 1e-6))) ** 2
            + sq(real["loss_last_over_first"], sim["loss_last_over_first"])
            + sq(real["loss_vs_sigma1_last_epoch"], sim["loss_vs_sigma1_last_epoch"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("grid_dir", help="the experiment folder of the calibration grid (records.parquet)")
    ap.add_argument("--sigma-range", type=float, nargs=2, default=[0.7, 8.0], help="the arena's sigma.min, max")
    ap.add_argument("--no-fit", action="store_true", help="evaluate the committed CALIBRATED parameters only")
    ap.add_argument("--max-evals", type=int, default=3000)
    a = ap.parse_args()
    from scipy.optimize import minimize

    sigmas, err, loss = real_curves(Path(a.grid_dir))
    _, draws, epochs, num_landmarks = err.shape
    real = statistics(sigmas, err, loss)
    grid = (sigmas, SIM_NETWORKS, epochs, num_landmarks, tuple(a.sigma_range))

    def params_of(x: np.ndarray) -> SimulatorParams:
        return START.replace(**{k: float(abs(v)) for k, v in zip(FITTED, x, strict=True)})

    def objective(x: np.ndarray) -> float:
        return misfit(real, statistics(sigmas, *simulated_curves(NetworkCostModel, *grid, params=params_of(x))))

    x0 = np.array([getattr(START, k) for k in FITTED])
    fit = None
    if not a.no_fit:
        fit = minimize(objective, x0, method="Nelder-Mead",
                       options={"maxfev": a.max_evals, "xatol": 1e-3, "fatol": 1e-5, "adaptive": True})
        params = params_of(fit.x)
    else:
        params = CALIBRATED
    sim = statistics(sigmas, *simulated_curves(NetworkCostModel, *grid, params=params))
    old = statistics(sigmas, *simulated_curves(LandmarkCostModel, *grid))
    rms = float(np.sqrt(np.mean((np.log(real["mean_err_mm_by_sigma_epoch"])
                                 - np.log(sim["mean_err_mm_by_sigma_epoch"])) ** 2)))
    write_result("simulator_calibration", {
        "grid_dir": str(a.grid_dir),
        "grid_sigmas": sigmas.tolist(), "real_draws": draws, "epochs": epochs, "landmarks": num_landmarks,
        "simulated_networks_per_sigma": SIM_NETWORKS,
        "fitted": not a.no_fit, "fitted_names": list(FITTED),
        "params": dataclasses.asdict(params),
        "misfit_start": objective(x0), "misfit": misfit(real, sim), "misfit_cost_model": misfit(real, old),
        "evaluations": None if fit is None else int(fit.nfev),
        "rms_log_err_by_sigma_epoch": rms,
        "real": real, "simulated": sim, "cost_model": old,
    })


if __name__ == "__main__":
    main()
