"""The one trainer every method shares: methods differ only in their sigma controller.

Used epoch by epoch (`run_epoch`, the shared `EpochLoop` of `base.py`) by Tune trials and by
`distlmk train` (`fit.py`); it supplies one epoch of the network and its validation. Its full
state (model, optimiser, scheduler, controller, history) round-trips through `state_dict`, so a
trial resumes exactly where its checkpoint left it.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from distlmk import schema as S
from distlmk.config import ExperimentConfig
from distlmk.control import SigmaController, make_controller
from distlmk.data import LandmarkDataset, load_dataset
from distlmk.data.transforms import (
    Augmenter,
    PreparedSplit,
    iterate_batches,
    prepare_split,
)
from distlmk.heatmap import GaussianHeatmapCodec
from distlmk.infer.core import predict_points
from distlmk.model import build_model, heatmap_size, resolve_device
from distlmk.train.base import EpochLoop, EpochMeasure
from distlmk.train.errors import NonFiniteLossError
from distlmk.train.losses import LOSSES
from distlmk.train.metrics import mean_position_baseline, radial_errors_mm, summarize

__all__ = ["NonFiniteLossError", "Trainer"]


class Trainer(EpochLoop):
    """The network trainer: `EpochLoop` with one epoch of the U-Net and its validation."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        dataset: LandmarkDataset | None = None,
        controller: SigmaController | None = None,
        trial_id: str | None = None,
    ):
        self.cfg = cfg
        t = cfg.train
        if t.torch_threads > 0:
            torch.set_num_threads(t.torch_threads)
        torch.manual_seed(t.seed)
        self.device = resolve_device(t.device)
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data)
        size = tuple(cfg.data.input_size)
        self.splits: dict[str, PreparedSplit] = {
            s: prepare_split(self.dataset, s, size) for s in self.dataset.splits
        }
        self.num_landmarks = self.dataset.num_landmarks
        stride = cfg.model.out_stride
        self.codec = GaussianHeatmapCodec(heatmap_size(size, stride), stride)  # input pixels <-> heatmaps
        self.augmenter = Augmenter(cfg.data.augment, size)
        self.model = build_model(
            self.num_landmarks, cfg.model.base_channels, cfg.model.depth, stride
        ).to(self.device)
        super().__init__(cfg, controller or make_controller(cfg.sigma, self.num_landmarks, trial_id))
        groups = [{"params": self.model.parameters(), "lr": t.lr, "weight_decay": t.weight_decay}]
        if self.controller.parameters():
            groups.append(
                {
                    "params": self.controller.parameters(),
                    "lr": cfg.sigma.learned_lr,
                    "weight_decay": 0.0,
                }
            )
        self.optimizer = torch.optim.AdamW(groups)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda e: t.lr_floor + (1 - t.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(e, t.epochs) / t.epochs)),
        )
        self.amp = bool(t.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.loss_fn = LOSSES[t.loss]

    def set_lr(self, lr: float) -> None:
        """Change the base learning rate (PBT explore) keeping the cosine schedule's position."""
        group = self.optimizer.param_groups[0]
        self.scheduler.base_lrs[0] = lr
        group["initial_lr"] = lr
        group["lr"] = lr * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device, non_blocking=True)

    def train_epoch(self) -> tuple[np.ndarray, int]:
        """One pass over the training split; returns (mean loss per landmark [L], images seen)."""
        self.model.train()
        rng = np.random.default_rng([self.cfg.train.seed, self.epoch])
        total = torch.zeros(self.num_landmarks, device=self.device)
        n_batches, n_images = 0, 0
        # Constant within an epoch: sigma-dependent weights (fixed, schedule, adaloss, rl) change only
        # in observe/load_state_dict; learned sigmas move per batch but their weights are a constant 1.
        weights = self.controller.loss_weights(self.controller.sigma(self.device))
        for x, pts, _ in iterate_batches(
            self.splits["train"], self.cfg.train.batch_size, rng, self.augmenter
        ):
            x_t = self._to_device(x)[:, None]
            p_t = self._to_device(pts.astype(np.float32))  # [B, L, 2] input pixels
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                pred = self.model(x_t)
            target = self.controller.targets(self.codec, p_t)
            per_lm = self.loss_fn(pred.float(), target)
            loss = (per_lm * weights).mean() + self.controller.penalty()
            if self.poison_loss:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {self.epoch + 1} (method {self.controller.name}); "
                    "lower train.lr or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += per_lm.detach()
            n_batches += 1
            n_images += len(x)
        self.scheduler.step()
        return (total / max(n_batches, 1)).cpu().numpy().astype(np.float64), n_images

    def predict(self, split: str) -> np.ndarray:
        """Predicted landmarks of a split in original image pixels [N, L, 2] (the path
        `distlmk predict` uses too: `distlmk.infer.core.predict_points`)."""
        data = self.splits[split]
        pts, _ = predict_points(
            self.model, self.codec, data.images, data.scale, self.device, self.amp,
            max(16, self.cfg.train.batch_size),
        )
        return pts

    def model_meta(self) -> dict:
        """What `distlmk predict` needs to use this model without the config (model.json)."""
        from distlmk.infer.model import build_meta

        return build_meta(self.cfg, self.dataset, self.controller)

    def evaluate(self, split: str, per_image: bool = False) -> dict:
        """`summarize` of a split; with per_image also its radial errors [N, L] (`errors_mm`) and
        predicted points [N, L, 2] in original pixels (`pred_px`)."""
        data = self.splits[split]
        pred = self.predict(split)
        errors = radial_errors_mm(pred, data.orig_points, data.spacing_mm)
        out = summarize(errors)
        if per_image:
            out["errors_mm"] = np.round(errors, 4).tolist()
            out["pred_px"] = np.round(pred, 3).tolist()
        return out

    def train_and_measure(self) -> EpochMeasure:
        """Train one epoch, then validate (the loop's controller decides on it)."""
        t0 = time.perf_counter()
        sigma_used = self.controller.sigma_values()
        train_loss, n_images = self.train_epoch()
        t_train = time.perf_counter() - t0
        return EpochMeasure(t0, sigma_used, train_loss, self.evaluate("val"), n_images / max(t_train, 1e-9))

    def test_metrics(self) -> dict:
        """Every test split, read once at the end: {split: summarize dict + errors_mm + baseline}."""
        out = {}
        for split in self.dataset.test_splits:
            out[split] = self.evaluate(split, per_image=True)
            out[split]["baseline_mean_mre_mm"] = self.baseline_mre(split)
        return out

    def test_record(self) -> dict:
        """`test_metrics` in the schema's flat names (`test/<split>/...`)."""
        return S.flatten_test_metrics(self.test_metrics())

    def baseline_mre(self, split: str) -> float:
        ds = self.dataset

        def sizes(idx: np.ndarray) -> np.ndarray:
            return np.array(
                [(ds.images[i].shape[1], ds.images[i].shape[0]) for i in idx], np.float64
            )

        tr, te = ds.splits["train"], ds.splits[split]
        return mean_position_baseline(
            ds.landmarks[tr], sizes(tr), ds.landmarks[te], sizes(te), ds.spacing_mm[te]
        )

    def state_dict(self) -> dict:
        return {
            **self.loop_state(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "meta": self.model_meta(),  # read by distlmk predict/export; ignored on resume
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.load_loop_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
