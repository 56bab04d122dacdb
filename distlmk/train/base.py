"""What a trial needs from a trainer: the network `Trainer` and the simulated (cost-model)
trainers all satisfy `EpochTrainer`, fault injection included (`poison_loss`)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


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
