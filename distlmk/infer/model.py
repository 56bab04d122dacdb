"""A trained model with what it needs to predict (model.json), and loading it from any of
the places distlmk saves one.

`PATH` for `load_model` may be:
- a `distlmk train` output folder (checkpoint.pt, model.json, config.json);
- a Tune trial checkpoint: a `checkpoint_NNNNNN` folder holding the trainer's checkpoint
  (`rundir.CHECKPOINT_FILE`), that file itself, or a trial folder (its latest checkpoint is used);
- a `distlmk export` folder (model.pt + model.json).
Checkpoints saved before model metadata existed are rebuilt from config.json (train
outputs) or the experiment's saved search config (trials); failing that, the error says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distlmk.config import ExperimentConfig, from_dict
from distlmk.data.dataset import DataError
from distlmk.data.transforms import resize_to_input
from distlmk.heatmap import GaussianHeatmapCodec
from distlmk.infer.core import predict_points
from distlmk.model import build_model, heatmap_size, resolve_device
from distlmk.rundir import CHECKPOINT_FILE, SEARCH_CONFIG, checkpoint_files, read_landmark_names, read_search_config

META_FORMAT = "distlmk-model"
META_VERSION = 1
MODEL_FILE = "model.pt"  # export: {"meta": ..., "model": state_dict}
META_FILE = "model.json"
NORMALISATION = "grayscale uint8 / 255, no mean/std (the trainer's input)"


class ModelLoadError(FileNotFoundError):
    """PATH is not a model distlmk can load; the message says what was found and what to pass."""


def build_meta(cfg: ExperimentConfig, dataset, controller=None) -> dict:
    spacing = np.unique(np.round(np.asarray(dataset.spacing_mm, float), 9)) if dataset is not None else []
    cov = controller.cov_values() if controller is not None else None
    return {
        "format": META_FORMAT,
        "version": META_VERSION,
        "input_size": [int(v) for v in cfg.data.input_size],
        "out_stride": int(cfg.model.out_stride),
        "heatmap_size": list(heatmap_size(tuple(cfg.data.input_size), cfg.model.out_stride)),
        "num_landmarks": int(dataset.num_landmarks) if dataset is not None else int(cfg.data.num_landmarks),
        "landmark_names": list(dataset.landmark_names) if dataset is not None else None,
        "model": {
            "arch": "unet",
            "base_channels": int(cfg.model.base_channels),
            "depth": int(cfg.model.depth),
            "out_stride": int(cfg.model.out_stride),
            "in_channels": 1,
        },
        "normalisation": NORMALISATION,
        "decode": "argmax + DARK refinement",
        "amp": bool(cfg.train.amp),
        # the training images' spacing when they all share one (reported, never assumed for new images)
        "train_spacing_mm": float(spacing[0]) if len(spacing) == 1 else None,
        "dataset": dataset.name if dataset is not None else cfg.data.format,
        "method": controller.name if controller is not None else cfg.sigma.method,
        "sigma": controller.sigma_values().tolist() if controller is not None else None,
        "sigma_cov": None if cov is None else cov.tolist(),
    }


def _check_meta(meta: dict, where: Path) -> dict:
    if meta.get("format") != META_FORMAT:
        raise ModelLoadError(f"{where}: not distlmk model metadata (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > META_VERSION:
        raise ModelLoadError(
            f"{where}: model metadata version {meta['version']} is newer than this distlmk "
            f"understands ({META_VERSION}); upgrade distlmk"
        )
    return meta


def _meta_from_experiment(exp: dict, names: list[str] | None, where: str) -> dict:
    cfg = from_dict(ExperimentConfig, exp, where)
    meta = build_meta(cfg, None)
    meta["landmark_names"] = names or [f"landmark_{k}" for k in range(cfg.data.num_landmarks)]
    meta["num_landmarks"] = len(meta["landmark_names"])
    meta["rebuilt_from"] = where
    return meta


def _legacy_train_meta(folder: Path) -> dict | None:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return None
    metrics = folder / "metrics.json"
    names = json.loads(metrics.read_text()).get("landmark_names") if metrics.is_file() else None
    return _meta_from_experiment(json.loads(cfg.read_text()), names, str(cfg))


def _legacy_trial_meta(ckpt_file: Path) -> dict | None:
    for d in ckpt_file.parents:
        saved = read_search_config(d, required=False)
        if saved:
            return _meta_from_experiment(saved["experiment"], read_landmark_names(d), str(d / SEARCH_CONFIG))
    return None


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest checkpoint_NNNNNN/<trainer checkpoint> of a Tune trial folder."""
    cks = checkpoint_files(trial_dir)
    return cks[-1] if cks else None


def _resolve(path: Path) -> tuple[Path, str]:
    """(file to load, kind) for any accepted PATH."""
    if path.is_file():
        return path, "file"
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such model file or folder")
    for name, kind in ((MODEL_FILE, "export"), ("checkpoint.pt", "train"), (CHECKPOINT_FILE, "trial")):
        if (path / name).is_file():
            return path / name, kind
    ck = latest_checkpoint(path)
    if ck is not None:
        return ck, "trial"
    raise ModelLoadError(
        f"{path}: no model here; pass a `distlmk train` output folder (checkpoint.pt), a trial "
        f"checkpoint folder ({CHECKPOINT_FILE}) or a `distlmk export` folder (model.pt)"
    )


def load_model_state(path: str | Path) -> tuple[dict, dict, Path]:
    """(meta, model state_dict, the file loaded) from any accepted PATH."""
    path = Path(path)
    file, _ = _resolve(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which
        raise ModelLoadError(f"{file}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ModelLoadError(f"{file}: not a distlmk checkpoint (no 'model' weights)")
    meta = state.get("meta")
    if meta is None:
        meta = _legacy_train_meta(file.parent) or _legacy_trial_meta(file)
    if meta is None:
        raise ModelLoadError(
            f"{file}: checkpoint from before distlmk saved model metadata, and no config.json or "
            f"{SEARCH_CONFIG} next to it to rebuild it from; retrain, or copy the run's config.json beside it"
        )
    return _check_meta(meta, file), state["model"], file


@dataclass
class LandmarkModel:
    """A loaded model ready to predict on uint8 grayscale images of any size."""

    meta: dict
    model: torch.nn.Module
    codec: GaussianHeatmapCodec
    device: torch.device
    source: Path

    @property
    def landmark_names(self) -> list[str]:
        return list(self.meta["landmark_names"])

    def predict(self, images: list[np.ndarray], batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """-> (points [N, L, 2] in original pixels, heatmap peak values [N, L])."""
        resized, scale = resize_to_input(images, tuple(self.meta["input_size"]))
        amp = bool(self.meta.get("amp", True) and self.device.type == "cuda")
        return predict_points(
            self.model, self.codec, resized, scale, self.device, amp, batch_size
        )


def load_model(path: str | Path, device: str = "auto") -> LandmarkModel:
    meta, weights, file = load_model_state(path)
    m = meta["model"]
    if m.get("arch", "unet") != "unet":
        raise ModelLoadError(f"{file}: unknown model architecture {m.get('arch')!r}")
    try:
        dev = resolve_device(device)
    except RuntimeError as e:
        raise DataError(str(e).replace("train.device", "--device")) from None
    net = build_model(int(meta["num_landmarks"]), int(m["base_channels"]), int(m["depth"]), int(m["out_stride"]))
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise ModelLoadError(f"{file}: weights do not match the model described by its metadata: {e}") from None
    net.to(dev).eval()
    codec = GaussianHeatmapCodec(tuple(meta["heatmap_size"]), int(m["out_stride"]))
    return LandmarkModel(meta, net, codec, dev, file)


def save_model(meta: dict, weights: dict, out_dir: str | Path) -> Path:
    """An exported model folder: model.pt (weights + meta) and model.json."""
    from distlmk.atomic import atomic_write, atomic_write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MODEL_FILE, lambda tmp: torch.save({"meta": meta, "model": weights}, tmp))
    atomic_write_json(out / META_FILE, meta)
    return out
