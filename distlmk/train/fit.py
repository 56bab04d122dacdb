"""`distlmk train`: one training run without Ray, with checkpoints and metrics.json."""

from __future__ import annotations

import time
from pathlib import Path

from distlmk import schema as S
from distlmk.atomic import atomic_write_json
from distlmk.config import ExperimentConfig, to_dict
from distlmk.infer.model import META_FILE
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint
from distlmk.train.trainer import Trainer

CHECKPOINT = "checkpoint.pt"


def fit(cfg: ExperimentConfig, out_dir: str | Path, resume: bool = False, log=print) -> dict:
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    log(
        f"data: {trainer.dataset.name}, {trainer.num_landmarks} landmarks, "
        + ", ".join(f"{s}={len(v)}" for s, v in trainer.splits.items())
        + f"; device {trainer.device}"
    )
    if resume:
        trainer.load_state_dict(load_checkpoint(out / CHECKPOINT))
        log(f"resumed from {out / CHECKPOINT} at epoch {trainer.epoch}")
    atomic_write_json(out / "config.json", to_dict(cfg))
    while not trainer.done:
        rec = trainer.run_epoch()
        log(
            f"epoch {rec[S.EPOCH]:3d}/{cfg.train.epochs}  loss {rec[S.TRAIN_LOSS]:.4f}  "
            f"val MRE {rec[S.VAL_MRE]:.2f} mm  sigma mean {sum(rec[S.SIGMA_NEXT]) / len(rec[S.SIGMA_NEXT]):.2f}  "
            f"{rec[S.TRAIN_IMAGES_PER_S]:.0f} img/s"
        )
        if trainer.epoch % cfg.train.checkpoint_every == 0 or trainer.done:
            state = trainer.state_dict()
            save_checkpoint(state, out / CHECKPOINT)
            atomic_write_json(out / META_FILE, state["meta"])  # what `distlmk predict` reads
        atomic_write_json(out / "history.json", trainer.history)
    per_split = trainer.test_metrics()
    first = next(iter(per_split))
    ips = [r[S.TRAIN_IMAGES_PER_S] for r in trainer.history]
    # the documented top-level keys are the first test split's; every split is also under test/<split>/
    metrics = {k: per_split[first][k] for k in ("mre_mm", "sdr", "per_landmark_mre_mm", "baseline_mean_mre_mm")}
    metrics["test_split"] = first
    metrics.update({k: v for k, v in trainer.history[-1].items() if k.startswith("val/")})
    metrics.update(S.flatten_test_metrics(per_split))
    metrics.update(
        {
            "sigma": trainer.controller.sigma_values().tolist(),
            "epochs": trainer.epoch,
            "method": trainer.controller.name,
            "device": str(trainer.device),
            "landmark_names": trainer.dataset.landmark_names,
            "train_images_per_s": sum(ips) / max(len(ips), 1),
            "wall_seconds": time.perf_counter() - t0,
        }
    )
    atomic_write_json(out / "metrics.json", metrics)
    log(
        f"test MRE {metrics['mre_mm']:.3f} mm (mean-position baseline {metrics['baseline_mean_mre_mm']:.3f} mm), "
        f"SDR2 {metrics['sdr']['2.0']:.1f}%  -> {out / 'metrics.json'}"
    )
    return metrics
