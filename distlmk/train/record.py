"""The per-epoch record every trainer (network or simulated) returns: one shape for all."""

from __future__ import annotations

import numpy as np

from distlmk.control import Decision


def epoch_record(epoch: int, method: str, train_loss: np.ndarray, val_mre_mm: float, val_sdr: dict,
                 val_per_landmark: list[float], sigma_used: np.ndarray, sigma_next: np.ndarray,
                 decision: Decision, images_per_s: float, seconds: float) -> dict:
    return {
        "epoch": epoch,
        "method": method,
        "train_loss": float(np.mean(train_loss)),
        "train_loss_per_landmark": np.asarray(train_loss).tolist(),
        "val_mre_mm": float(val_mre_mm),
        "val_sdr": val_sdr,
        "val_per_landmark_mre_mm": list(val_per_landmark),
        "sigma": np.asarray(sigma_used).tolist(),
        "sigma_next": np.asarray(sigma_next).tolist(),
        "reward": decision.reward,
        "ended": None if decision.ended is None else decision.ended.astype(bool).tolist(),
        "stopped": bool(decision.stop),
        "policy_latency_ms": decision.info.get("policy_latency_ms"),
        "policy_failed": bool(decision.info.get("policy_failed", False)),
        "images_per_s": images_per_s,
        "epoch_seconds": seconds,
    }
