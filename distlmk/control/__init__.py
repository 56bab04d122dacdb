"""Sigma controllers: fixed | schedule | learned | learned_anisotropic | adaloss | rl | landmark_pbt,
behind one interface."""

from __future__ import annotations

from distlmk.config import SigmaConfig
from distlmk.control.base import Decision, EpochFeedback, SigmaController


def make_controller(
    cfg: SigmaConfig, num_landmarks: int, trial_id: str | None = None, transport=None
) -> SigmaController:
    """The controller of `cfg.method`; `transport` reaches the policy server (rl, landmark_pbt; default: its Ray actor)."""
    if cfg.method == "fixed":
        from distlmk.control.fixed import FixedSigma

        return FixedSigma(cfg, num_landmarks)
    if cfg.method == "schedule":
        from distlmk.control.schedule import ScheduleSigma

        return ScheduleSigma(cfg, num_landmarks)
    if cfg.method == "learned":
        from distlmk.control.learned import LearnedSigma

        return LearnedSigma(cfg, num_landmarks)
    if cfg.method == "learned_anisotropic":
        from distlmk.control.learned_anisotropic import LearnedAnisotropicSigma

        return LearnedAnisotropicSigma(cfg, num_landmarks)
    if cfg.method == "adaloss":
        from distlmk.control.adaloss import AdaLossSigma

        return AdaLossSigma(cfg, num_landmarks)
    if cfg.method == "rl":
        from distlmk.control.rl import RLSigma

        return RLSigma(cfg, num_landmarks, trial_id=trial_id or "local", transport=transport)
    if cfg.method == "landmark_pbt":
        from distlmk.control.landmark_pbt import LandmarkPBTSigma

        return LandmarkPBTSigma(cfg, num_landmarks, trial_id=trial_id or "local", transport=transport)
    raise ValueError(f"sigma.method: unknown method {cfg.method!r}")


__all__ = ["Decision", "EpochFeedback", "SigmaController", "make_controller"]
