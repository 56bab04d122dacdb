"""What a trial needs from a trainer, and the epoch loop every trainer shares.

`EpochTrainer` is the protocol a Tune trial drives: the network `Trainer` and the simulated
(cost-model) trainers (`distlmk.sim.trainer`) satisfy it, fault injection included (`poison_loss`).
`EpochLoop` is its one implementation of the epoch bookkeeping (epoch counter, the controller's
decision, stop and budget, the record, history, set_sigma): a trainer subclasses it and supplies
only `train_and_measure`, one epoch of training and its validation (the network, or the cost model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from distlmk import schema as S
from distlmk.control import EpochFeedback
from distlmk.train.record import epoch_record

if TYPE_CHECKING:
    from distlmk.config import ExperimentConfig
    from distlmk.control import SigmaController


@runtime_checkable
class EpochTrainer(Protocol):
    device: Any  # where it trains ("cpu", a torch.device, "sim")
    history: list[dict]  # every epoch record so far (saved in, and restored from, its checkpoint)
    poison_loss: bool  # fault injection: when set, the next epoch's loss is NaN (NonFiniteLossError)

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        ...

    @property
    def done(self) -> bool:
        """Budget spent or stopped by its controller."""
        ...

    def run_epoch(self) -> dict:
        """Train and validate one epoch, let the sigma controller decide; the epoch's record."""
        ...

    def test_record(self) -> dict:
        """`test/<split>/...` metrics of every test split (`distlmk.schema`), at the end of a trial."""
        ...

    def set_lr(self, lr: float) -> None:
        """Change the learning rate (PBT explore); a no-op where there is none."""
        ...

    def set_sigma(self, values: list[float]) -> None:
        """Replace the controller's per-landmark sigmas [L] (PBT explore on sigma, after a restore)."""
        ...

    def state_dict(self) -> dict:
        ...

    def load_state_dict(self, state: dict) -> None:
        ...


@dataclass
class EpochMeasure:
    """One epoch's training and validation, before its controller decides (what a trainer supplies)."""

    started: float  # time.perf_counter() when the epoch began
    sigma_used: np.ndarray  # [L] the sigmas the epoch trained with
    train_loss: np.ndarray  # [L] mean training loss per landmark
    val: dict  # `metrics.summarize` dict of the validation split (per_landmark_mre_mm: [L])
    images_per_s: float = 0.0  # training throughput (0 where there are no images)

    @property
    def val_error_mm(self) -> np.ndarray:
        """[L] validation mean radial error per landmark (mm): the controller's feedback."""
        return np.asarray(self.val["per_landmark_mre_mm"])


class EpochLoop:
    """The epoch bookkeeping shared by every trainer (an `EpochTrainer` but for `test_record`,
    `state_dict` and `load_state_dict`, which add the trainer's own state to `loop_state`).

    An epoch is two halves, `measure_epoch` (the trainer's `train_and_measure`, then the epoch
    counter) and `finish_epoch` (the controller decides; stop, record, history, close), so an
    in-process population (`distlmk.policy.rollout`) posts every member's epoch to its board
    between them; `run_epoch` is both.
    """

    def __init__(self, cfg: ExperimentConfig, controller: SigmaController):
        self.cfg = cfg
        self.controller = controller
        self.epoch = 0  # epochs completed
        self.stopped = False
        self.poison_loss = False  # fault injection: the next epoch's loss (or error) turns NaN
        self.history: list[dict] = []

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.cfg.train.epochs

    def set_lr(self, lr: float) -> None:
        """PBT mutates lr; a no-op where there is none (the cost model)."""

    def set_sigma(self, values: list[float]) -> None:
        """Replace the controller's per-landmark sigmas [L] (PBT explore on sigma)."""
        self.controller.set_sigma(values)

    def train_and_measure(self) -> EpochMeasure:
        """Train one epoch and validate (`self.epoch` still counts the epochs before it); raises
        `NonFiniteLossError` on a non-finite loss or error."""
        raise NotImplementedError

    def measure_epoch(self) -> EpochMeasure:
        """First half of an epoch: train and validate; the epoch counts as completed."""
        measured = self.train_and_measure()
        self.epoch += 1
        return measured

    def finish_epoch(self, m: EpochMeasure) -> dict:
        """Second half: the controller decides on the epoch's feedback; the epoch's record."""
        decision = self.controller.observe(EpochFeedback(
            epoch=self.epoch, epochs=self.cfg.train.epochs, val_error_mm=m.val_error_mm, train_loss=m.train_loss,
        ))
        self.stopped = self.stopped or decision.stop
        record = epoch_record(
            self.epoch, self.controller.name, m.train_loss, m.val, m.sigma_used, self.controller.sigma_values(),
            decision, m.images_per_s, time.perf_counter() - m.started,
        )
        cov = self.controller.cov_values()
        if cov is not None:  # learned_anisotropic: (sigma_x, sigma_y, angle rad) [L, 3] after the epoch
            record[S.SIGMA_COV] = cov.tolist()
        self.history.append(record)
        if self.done:
            self.controller.close(truncated=not self.stopped)
        return record

    def run_epoch(self) -> dict:
        """Train one epoch, validate, let the controller decide; returns the epoch's record."""
        return self.finish_epoch(self.measure_epoch())

    def loop_state(self) -> dict:
        """The loop's part of a checkpoint: epoch, stopped, the controller's state, history."""
        return {"epoch": self.epoch, "stopped": self.stopped, "controller": self.controller.state_dict(),
                "history": self.history}

    def load_loop_state(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.epoch = int(state["epoch"])
        self.stopped = bool(state["stopped"])
        self.history = list(state["history"])
