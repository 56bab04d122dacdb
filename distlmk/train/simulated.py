"""A cost model standing in for the network: same controller, observation and reward path.

Why: the central policy must be tested for learning and measured at 256-1,024 trials on
one machine; a real network per trial would make both impossible. Each simulated landmark
has a hidden ambiguity a_l. Its best sigma grows with a_l, and so does its error floor
(which the policy can see as the error level). Per epoch the validation error moves toward
a floor that rises as sigma leaves that landmark's best value, and falls fastest when sigma
is near it. Optional `epoch_seconds` sleeps to stand in for compute.
"""

from __future__ import annotations

import math
import time

import numpy as np

from distlmk.config import ExperimentConfig
from distlmk.control import EpochFeedback, SigmaController, make_controller
from distlmk.train.metrics import SDR_THRESHOLDS_MM
from distlmk.train.record import epoch_record
from distlmk.train.trainer import NonFiniteLossError

DIAG_MM = 307.0  # a 240 x 192 mm field, like the synthetic images


class LandmarkCostModel:
    """Per-landmark validation error dynamics as a function of sigma (vectorised over landmarks)."""

    def __init__(self, num_landmarks: int, seed: int, sigma_min: float, sigma_max: float):
        self.rng = np.random.default_rng([seed, 7919])
        self.ambiguity = self.rng.uniform(0, 1, num_landmarks)
        lo, hi = math.log(sigma_min), math.log(sigma_max)
        self.log_target = lo + (0.15 + 0.7 * self.ambiguity) * (hi - lo)
        self.floor = 0.8 + 3.0 * self.ambiguity  # mm
        self.err = self.rng.uniform(8.0, 12.0, num_landmarks)

    def target_sigma(self) -> np.ndarray:
        return np.exp(self.log_target)

    def step(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance one epoch with per-landmark sigma; returns (val error mm [L], train loss [L])."""
        d = (np.log(sigma) - self.log_target) / 0.4
        speed = 0.1 + 0.25 * np.exp(-0.5 * d**2)
        floor = self.floor * (1 + 0.25 * d**2)
        noise = self.rng.normal(0, 0.01, self.err.shape) * self.err
        self.err = np.maximum(floor + (self.err - floor) * (1 - speed) + noise, 0.05)
        loss = self.err * sigma / (1 + sigma) * 0.1
        return self.err.copy(), loss

    def state_dict(self) -> dict:
        return {"err": self.err.tolist(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, s: dict) -> None:
        self.err = np.asarray(s["err"])
        self.rng.bit_generator.state = s["rng"]


class SimulatedTrainer:
    """Trainer-compatible (run_epoch/done/state_dict/test_metrics) cost-model trial."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        controller: SigmaController | None = None,
        trial_id: str | None = None,
        epoch_seconds: float = 0.0,
        seed: int | None = None,
    ):
        self.cfg = cfg
        self.num_landmarks = cfg.data.num_landmarks
        seed = cfg.train.seed if seed is None else seed
        self.model = LandmarkCostModel(self.num_landmarks, seed, cfg.sigma.min, cfg.sigma.max)
        self.controller = controller or make_controller(cfg.sigma, self.num_landmarks, trial_id)
        self.epoch_seconds = epoch_seconds
        self.device = "sim"
        self.epoch = 0
        self.stopped = False
        self.poison_loss = False  # fault injection: the next epoch's error turns NaN
        self.history: list[dict] = []

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.cfg.train.epochs

    def set_lr(self, lr: float) -> None:
        """PBT mutates lr; the cost model has none (kept for interface parity)."""

    def run_epoch(self) -> dict:
        t0 = time.perf_counter()
        if self.epoch_seconds > 0:
            time.sleep(self.epoch_seconds)
        sigma = self.controller.sigma_values()
        err, loss = self.model.step(sigma)
        if self.poison_loss:
            err = err * np.nan
        if not np.all(np.isfinite(err)):
            raise NonFiniteLossError(f"non-finite validation error at epoch {self.epoch + 1} (simulated trial)")
        self.epoch += 1
        decision = self.controller.observe(
            EpochFeedback(self.epoch, self.cfg.train.epochs, err, loss, DIAG_MM)
        )
        self.stopped = self.stopped or decision.stop
        record = epoch_record(
            self.epoch, self.controller.name, loss, float(err.mean()), _rayleigh_sdr(err), err.tolist(), sigma,
            self.controller.sigma_values(), decision, 0.0, time.perf_counter() - t0,
        )
        self.history.append(record)
        if self.done:
            self.controller.close(truncated=not self.stopped)
        return record

    def test_metrics(self) -> dict:
        err = self.model.err
        return {
            "mre_mm": float(err.mean()),
            "sdr": _rayleigh_sdr(err),
            "per_landmark_mre_mm": err.tolist(),
            "test_split": "sim",
        }

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "stopped": self.stopped,
            "model": self.model.state_dict(),
            "controller": self.controller.state_dict(),
            "history": self.history,
        }

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.stopped, self.history = (
            int(s["epoch"]),
            bool(s["stopped"]),
            list(s["history"]),
        )
        self.model.load_state_dict(s["model"])
        self.controller.load_state_dict(s["controller"])


def _rayleigh_sdr(mean_err: np.ndarray) -> dict:
    """SDR (%) if each landmark's radial error were Rayleigh-distributed with this mean."""
    s = np.maximum(mean_err, 1e-9) / math.sqrt(math.pi / 2)
    return {
        f"{t:.1f}": float(100 * np.mean(1 - np.exp(-(t**2) / (2 * s**2))))
        for t in SDR_THRESHOLDS_MM
    }


class PackedSimulatedTrainer:
    """`pack` simulated trials in one Tune trial process, each its own RL client (own trial id).

    Why: a Tune trial is a process; 1,024 of them do not fit on one small machine, yet the
    central policy must be measured with 1,024 concurrent clients. The sub-trials step in
    threads, so their policy requests overlap as they would from separate processes.
    One record per iteration aggregates the sub-trials (mean error, all latencies).
    """

    def __init__(self, cfg: ExperimentConfig, trial_id: str, pack: int, epoch_seconds: float = 0.0):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg = cfg
        self.subs = [
            SimulatedTrainer(cfg, trial_id=f"{trial_id}/{k}", epoch_seconds=epoch_seconds,
                             seed=cfg.train.seed * 100_003 + k)
            for k in range(pack)
        ]
        self.pool = ThreadPoolExecutor(max_workers=pack)
        self.device = "sim"
        self.controller = self.subs[0].controller
        self.history: list[dict] = []

    @property
    def epoch(self) -> int:
        return max(s.epoch for s in self.subs)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.subs)

    def set_lr(self, lr: float) -> None:
        """PBT mutates lr; the cost model has none (kept for interface parity)."""

    @property
    def poison_loss(self) -> bool:
        """Fault injection reaches every sub-trial: the next epoch's error is NaN in each."""
        return any(s.poison_loss for s in self.subs)

    @poison_loss.setter
    def poison_loss(self, value: bool) -> None:
        for s in self.subs:
            s.poison_loss = bool(value)

    def run_epoch(self) -> dict:
        t0 = time.perf_counter()
        live = [s for s in self.subs if not s.done]
        recs = list(self.pool.map(lambda s: s.run_epoch(), live))
        err = np.array([r["val_mre_mm"] for r in recs])
        rewards = [r["reward"] for r in recs if r["reward"] is not None]
        lat = [r["policy_latency_ms"] for r in recs if r.get("policy_latency_ms") is not None]
        first = recs[0]
        record = {
            **first, "epoch": self.epoch, "val_mre_mm": float(err.mean()), "val_mre_min_mm": float(err.min()),
            "val_sdr": {k: float(np.mean([r["val_sdr"][k] for r in recs])) for k in first["val_sdr"]},
            "reward": float(np.mean(rewards)) if rewards else None,
            "stopped": all(s.stopped for s in self.subs),  # by the policy, as for one trial
            "trial_epochs": len(recs), "policy_latencies_ms": lat,
            "policy_latency_ms": float(np.mean(lat)) if lat else None,
            "epoch_seconds": time.perf_counter() - t0,
        }
        self.history.append(record)
        return record

    def test_metrics(self) -> dict:
        ms = [s.test_metrics() for s in self.subs]
        return {"mre_mm": float(np.mean([m["mre_mm"] for m in ms])),
                "sdr": {k: float(np.mean([m["sdr"][k] for m in ms])) for k in ms[0]["sdr"]},
                "per_landmark_mre_mm": np.mean([m["per_landmark_mre_mm"] for m in ms], axis=0).tolist(),
                "test_split": "sim"}

    def state_dict(self) -> dict:
        return {"subs": [s.state_dict() for s in self.subs], "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        for s, st in zip(self.subs, state["subs"], strict=True):
            s.load_state_dict(st)
        self.history = list(state["history"])
