"""One entry point from a DataConfig to a LandmarkDataset."""

from __future__ import annotations

from distlmk.config import DataConfig
from distlmk.data.dataset import DataError, LandmarkDataset


def load_dataset(cfg: DataConfig) -> LandmarkDataset:
    if cfg.format == "synthetic":
        from distlmk.data.synthetic import synthetic_dataset

        return synthetic_dataset(
            cfg.num_train,
            cfg.num_val,
            cfg.num_test,
            cfg.num_landmarks,
            cfg.synth_seed,
            cfg.synth_size,
            cfg.root,
            cfg.synth_spacing_mm,
            cfg.synth_noise_scale,
            cfg.synth_eval_truth,
            cfg.synth_noise_spread,
        )
    if not cfg.root:
        raise DataError(
            f"data.root is required for format {cfg.format!r}: set it to the dataset folder"
        )
    if cfg.format == "isbi2015":
        from distlmk.data.isbi2015 import load_isbi2015

        return load_isbi2015(cfg.root, cfg.ground_truth, cfg.val_fraction)
    from distlmk.data.folder import load_folder

    return load_folder(cfg.root, cfg.val_fraction)
