"""The population simulator's trial: one network's landmarks, coupled, calibrated on real grid runs.

Why: the policy's warm start learns what the simulator teaches. The older `cost_model` treats
landmarks as independent, lets sigma act at once, plateaus at 0.8-3.8 mm and scales its loss as
sigma/(1+sigma); the first real decision then shows states it never taught. This model keeps
the same interface (`step(sigma) -> (val error mm [L], train loss [L])`, `err`, `log_target`,
`rng`) and adds what real trials show:

- **one shared network**: a trial's progress p in [0, 1) is shared by all its landmarks, and it
  advances faster when the targets are wide (the mean over landmarks of sigma_eff^ease_slope),
  so every landmark's sigma moves every other landmark's error;
- **memory**: the network answers an effective sigma that follows the set sigma in log space by
  a fraction `memory` per epoch, so a change takes epochs to show;
- **a narrowing costs**: narrower targets undo part of what the network has fitted: every epoch the
  shared progress falls by a factor exp(-shock x the mean over landmarks of how far the set log sigma
  is below the effective one), so one narrowing by D is charged while the network adapts, about
  shock x D / memory in all. Real networks switched
  from sigma 4 to 1.5 halfway read 3.7 times the constant run's error the epoch after, and still
  1.7 times it at the end, while 1.5 -> 4 costs nothing;
- **the real trainer's loss**: the MSE of a Gaussian target scales as sigma^2 times the share not yet
  fitted, and wide targets are fitted more completely (real: loss ~ sigma^1.8 at the first epoch,
  ~ sigma^1.2 at the last);
- **the real error scale** and **optima that move**: a landmark's error is its floor (lowest at its
  own late optimum, rising quadratically in log sigma away from it) plus an unfitted residual that
  wide targets shrink. Early on the residual dominates and wide sigma wins; late the floor does
  and each landmark's own sigma wins, so early rankings mislead as they do in real grids.

The parameters (`SimulatorParams`) are fitted by `benchmarks/simulator_calibration.py` to real
grid runs on training draws; the fit and its residuals are committed in
`benchmarks/results/simulator_calibration.json`. `memory` and `shock` cannot be seen in fixed-sigma
runs: `benchmarks/sigma_switch.py` fits them to real runs that switch sigma once
(`benchmarks/results/sigma_switch.json`). Numpy only, a leaf like `cost_model`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimulatorParams:
    """The simulator's constants (defaults: the calibration's starting point). Sigma in heatmap pixels,
    errors in mm, rates per epoch."""

    start_err_mm: float = 30.0  # mean validation error of an untrained network (first epoch, mm)
    rate: float = 0.35  # the shared network's progress per epoch at sigma_eff = sigma_ref
    ease_slope: float = 0.5  # progress rate scales as mean_l (sigma_eff_l / sigma_ref)^ease_slope
    sigma_ref: float = 2.5  # the sigma at which `rate` holds (pixels)
    wide_gain: float = 0.6  # the unfitted residual scales as (sigma_eff / sigma_ref)^-wide_gain
    onset: float = 2.5  # residual = start_err x unfitted^onset: above 1, errors collapse after a slow start
    floor_min_mm: float = 0.35  # floor of the easiest landmark at its own optimum (mm)
    floor_span_mm: float = 1.0  # the hardest landmark's floor is floor_min + floor_span (mm)
    target_lo: float = 0.05  # late optima span [target_lo, target_lo + target_span] of log[min, max]
    target_span: float = 0.5
    target_noise: float = 0.15  # a landmark's optimum in log sigma: ambiguity's share plus this sd
    curvature: float = 0.35  # floor x (1 + curvature * (log sigma_eff - log target)^2)
    memory: float = 0.5  # fraction of a log-sigma change the network answers per epoch
    shock: float = 0.0  # per epoch, progress x exp(-shock x mean of max(log sigma_eff - log sigma, 0)): narrowing undoes fitting
    network_noise: float = 0.04  # sd of the log error shared by all landmarks of one epoch
    landmark_noise: float = 0.05  # sd of each landmark's own log-error noise per epoch
    loss_scale: float = 1.0  # loss_l = loss_scale * sigma_l^2 * (unfitted + loss_floor * (sigma_l / sigma_ref)^-loss_slope)
    loss_floor: float = 0.8  # the share of an untrained network's loss that training never removes, at sigma_ref
    loss_slope: float = 0.8  # wide targets are fitted more completely: their remaining share is smaller

    def replace(self, **changes) -> SimulatorParams:
        return dataclasses.replace(self, **changes)


# the starting point above, fitted by benchmarks/simulator_calibration.py to real grid runs on training
# draws (benchmarks/results/simulator_calibration.json; 5 significant digits)
CALIBRATED = SimulatorParams(
    start_err_mm=57.471, rate=0.31596, ease_slope=0.11814, wide_gain=0.034811, onset=2.8662,
    floor_min_mm=0.21312, floor_span_mm=1.6066, target_lo=0.075434, target_span=0.3901,
    target_noise=0.25463, curvature=0.79117, network_noise=0.005726, landmark_noise=0.017034,
    loss_floor=0.65946, loss_slope=0.73946,
    memory=0.7, shock=0.5,  # fitted to real sigma switches by benchmarks/sigma_switch.py (a grid search)
)


class NetworkCostModel:
    """One simulated network's per-landmark validation error [L] under per-landmark sigma [L]."""

    def __init__(self, num_landmarks: int, seed: int, sigma_min: float, sigma_max: float,
                 params: SimulatorParams = CALIBRATED):
        self.p = params
        self.rng = np.random.default_rng([seed, 7919])
        self.ambiguity = self.rng.uniform(0, 1, num_landmarks)
        lo, hi = math.log(sigma_min), math.log(sigma_max)
        share = params.target_lo + params.target_span * self.ambiguity
        self.log_target = lo + share * (hi - lo) + self.rng.normal(0, params.target_noise, num_landmarks)
        self.floor = params.floor_min_mm + params.floor_span_mm * self.ambiguity
        self.progress = 0.0
        self.log_sigma_eff: np.ndarray | None = None
        self.err = np.full(num_landmarks, params.start_err_mm)

    def step(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance one epoch with per-landmark sigma [L]; returns (val error mm [L], train loss [L])."""
        p = self.p
        log_sigma = np.log(np.asarray(sigma, float))
        if self.log_sigma_eff is None:
            self.log_sigma_eff = log_sigma.copy()
        else:
            narrowing = float(np.mean(np.maximum(self.log_sigma_eff - log_sigma, 0.0)))
            self.progress *= math.exp(-p.shock * narrowing)
            self.log_sigma_eff = self.log_sigma_eff + p.memory * (log_sigma - self.log_sigma_eff)
        rel = self.log_sigma_eff - math.log(p.sigma_ref)
        ease = float(np.mean(np.exp(p.ease_slope * rel)))
        self.progress += min(p.rate * ease, 1.0) * (1.0 - self.progress)
        unfitted = 1.0 - self.progress
        d = self.log_sigma_eff - self.log_target
        floor = self.floor * (1.0 + p.curvature * d**2)
        residual = p.start_err_mm * unfitted**p.onset * np.exp(-p.wide_gain * rel)
        noise = self.rng.normal(0, p.network_noise) + self.rng.normal(0, p.landmark_noise, d.shape)
        self.err = (floor + residual) * np.exp(noise)
        kept = p.loss_floor * np.exp(-p.loss_slope * (log_sigma - math.log(p.sigma_ref)))
        loss = p.loss_scale * np.exp(2 * log_sigma) * (unfitted + kept)
        return self.err.copy(), loss

    def state_dict(self) -> dict:
        eff = None if self.log_sigma_eff is None else self.log_sigma_eff.tolist()
        return {"err": self.err.tolist(), "progress": self.progress, "log_sigma_eff": eff,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict) -> None:
        self.err = np.asarray(s["err"])
        self.progress = float(s["progress"])
        self.log_sigma_eff = None if s["log_sigma_eff"] is None else np.asarray(s["log_sigma_eff"])
        self.rng.bit_generator.state = s["rng"]


__all__ = ["CALIBRATED", "NetworkCostModel", "SimulatorParams"]
