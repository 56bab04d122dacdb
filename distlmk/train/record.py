"""The per-epoch record every trainer (network or simulated) returns, in the schema's names."""

from __future__ import annotations

import numpy as np

from distlmk import schema as S
from distlmk.control import Decision


def epoch_record(epoch: int, method: str, train_loss: np.ndarray, val: dict, sigma_used: np.ndarray,
                 sigma_next: np.ndarray, decision: Decision, images_per_s: float, seconds: float) -> dict:
    """`val` is a `metrics.summarize` dict of the validation split."""
    return {
        S.EPOCH: epoch,
        S.METHOD: method,
        S.TRAIN_LOSS: float(np.mean(train_loss)),
        S.TRAIN_LOSS_PER_LANDMARK: np.asarray(train_loss).tolist(),
        S.TRAIN_IMAGES_PER_S: images_per_s,
        S.TRAIN_EPOCH_S: seconds,
        **S.metric_block("val", val),
        S.SIGMA_USED: np.asarray(sigma_used).tolist(),
        S.SIGMA_NEXT: np.asarray(sigma_next).tolist(),
        S.RL_REWARD: decision.reward,
        S.RL_ENDED: None if decision.ended is None else decision.ended.astype(bool).tolist(),
        S.RL_STOPPED: bool(decision.stop),
        S.POLICY_LATENCY_MS: decision.info.get("policy_latency_ms"),
        S.POLICY_FAILED: bool(decision.info.get("policy_failed", False)),
        S.COST_TRIAL_EPOCHS: 1,
    }
