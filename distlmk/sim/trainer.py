"""Trainer-compatible cost-model trials: the network replaced by `sim.cost_model.LandmarkCostModel`.

The same epoch loop (`distlmk.train.base.EpochLoop`: controller, record, RL client path) as the
network trainer, so populations of hundreds of trials (scaling studies, the policy's warm start,
learning tests) run on one machine. Optional `epoch_seconds` sleeps to stand in for compute.
Unlike the cost model this module uses the controllers (torch); `import distlmk.sim` does not load it.
"""

from __future__ import annotations

import time

import numpy as np

from distlmk import schema as S
from distlmk.config import ExperimentConfig
from distlmk.control import SigmaController, make_controller
from distlmk.sim import SIMULATORS, rayleigh_sdr
from distlmk.train.base import EpochLoop, EpochMeasure
from distlmk.train.errors import NonFiniteLossError


def _summary(err: np.ndarray) -> dict:
    return {"mre_mm": float(err.mean()), "sdr": rayleigh_sdr(err), "per_landmark_mre_mm": err.tolist()}


class SimulatedTrainer(EpochLoop):
    """`EpochLoop` with the cost model's step as its epoch (an `EpochTrainer`)."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        controller: SigmaController | None = None,
        trial_id: str | None = None,
        epoch_seconds: float = 0.0,
        seed: int | None = None,
        model: str = "cost_model",
    ):
        self.num_landmarks = cfg.data.num_landmarks
        seed = cfg.train.seed if seed is None else seed
        self.model = SIMULATORS[model](self.num_landmarks, seed, cfg.sigma.min, cfg.sigma.max)
        super().__init__(cfg, controller or make_controller(cfg.sigma, self.num_landmarks, trial_id))
        self.epoch_seconds = epoch_seconds
        self.device = "sim"

    def train_and_measure(self) -> EpochMeasure:
        """The cost model's step under the controller's sigmas [L]: its error stands in for validation."""
        t0 = time.perf_counter()
        if self.epoch_seconds > 0:
            time.sleep(self.epoch_seconds)
        sigma = self.controller.sigma_values()
        err, loss = self.model.step(sigma)
        if self.poison_loss:
            err = err * np.nan
        if not np.all(np.isfinite(err)):
            raise NonFiniteLossError(f"non-finite validation error at epoch {self.epoch + 1} (simulated trial)")
        return EpochMeasure(t0, sigma, loss, _summary(err))

    def test_record(self) -> dict:
        """The cost model has no test images: its final error stands in for split "test"."""
        return S.metric_block("test/test", _summary(self.model.err))

    def state_dict(self) -> dict:
        return {**self.loop_state(), "model": self.model.state_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.load_loop_state(s)
        self.model.load_state_dict(s["model"])


class PackedSimulatedTrainer:
    """`pack` simulated trials in one Tune trial process, each its own RL client (own trial id).

    Why: a Tune trial is a process; 1,024 of them do not fit on one small machine, yet the
    central policy must be measured with 1,024 concurrent clients. The sub-trials step in
    threads, so their policy requests overlap as they would from separate processes.
    One record per iteration aggregates the sub-trials (mean error, all latencies).
    """

    def __init__(self, cfg: ExperimentConfig, trial_id: str, pack: int, epoch_seconds: float = 0.0,
                 model: str = "cost_model"):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg = cfg
        self.subs = [
            SimulatedTrainer(cfg, trial_id=f"{trial_id}/{k}", epoch_seconds=epoch_seconds,
                             seed=cfg.train.seed * 100_003 + k, model=model)
            for k in range(pack)
        ]
        self.pool = ThreadPoolExecutor(max_workers=pack)
        self.device = "sim"
        self.controller = self.subs[0].controller
        self.history: list[dict] = []

    @property
    def poison_loss(self) -> bool:
        return any(s.poison_loss for s in self.subs)

    @poison_loss.setter
    def poison_loss(self, value: bool) -> None:  # fault injection reaches every sub-trial
        for s in self.subs:
            s.poison_loss = value

    @property
    def epoch(self) -> int:
        return max(s.epoch for s in self.subs)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.subs)

    def set_lr(self, lr: float) -> None:
        """PBT mutates lr; the cost model has none (kept for interface parity)."""

    def set_sigma(self, values: list[float]) -> None:
        """Every sub-trial's controller gets the same sigmas (they share one Tune config)."""
        for s in self.subs:
            s.set_sigma(values)

    def run_epoch(self) -> dict:
        """One epoch of every live sub-trial, aggregated into one record (means; all latencies)."""
        t0 = time.perf_counter()
        live = [s for s in self.subs if not s.done]
        recs = list(self.pool.map(lambda s: s.run_epoch(), live))
        rewards = [r[S.RL_REWARD] for r in recs if r[S.RL_REWARD] is not None]
        lat = [r[S.POLICY_LATENCY_MS] for r in recs if r.get(S.POLICY_LATENCY_MS) is not None]
        mean_keys = [S.VAL_MRE, *(S.val_key(n) for n in S.SDR_NAMES), S.TRAIN_LOSS]
        record = {
            **recs[0], S.EPOCH: self.epoch, **{k: float(np.mean([r[k] for r in recs])) for k in mean_keys},
            S.RL_REWARD: float(np.mean(rewards)) if rewards else None,
            S.RL_STOPPED: all(s.stopped for s in self.subs),  # by the policy, as for one trial
            S.COST_TRIAL_EPOCHS: len(recs), S.POLICY_LATENCIES_MS: lat,
            S.POLICY_LATENCY_MS: float(np.mean(lat)) if lat else None,
            S.TRAIN_EPOCH_S: time.perf_counter() - t0,
        }
        self.history.append(record)
        return record

    def test_record(self) -> dict:
        err = np.mean([s.model.err for s in self.subs], axis=0)
        return S.metric_block("test/test", _summary(err))

    def state_dict(self) -> dict:
        return {"subs": [s.state_dict() for s in self.subs], "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        for s, st in zip(self.subs, state["subs"], strict=True):
            s.load_state_dict(st)
        self.history = list(state["history"])
