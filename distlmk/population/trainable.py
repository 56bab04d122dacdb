"""The Tune trial: one landmark network (or its cost model) trained with one sigma controller.

Resumes from `tune.get_checkpoint()` (failure retry, PBT exploit, `Tuner.restore`) and
reports every epoch with a checkpoint, so nothing computed is lost.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from pathlib import Path

import torch
from ray import tune

from distlmk.config import ExperimentConfig, from_dict
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FILE = "trainer.pt"


def trial_experiment(config: dict, run: dict) -> ExperimentConfig:
    """The ExperimentConfig of one trial: shared settings + this trial's method/seed/sigma/lr."""
    exp = from_dict(ExperimentConfig, run["experiment"], "experiment")
    t = config["trial"]
    exp.sigma.method = t["method"]
    exp.train.seed = int(t["seed"])
    if t.get("sigma_init") is not None:
        exp.sigma.init = float(t["sigma_init"])
    if "lr" in config:
        exp.train.lr = float(config["lr"])
    exp.train.torch_threads = max(1, int(run.get("cpu", 1)))
    return exp


def flatten_record(rec: dict) -> dict:
    """Trainer record -> Tune metrics (scalars for schedulers, lists kept for our records)."""
    out = {
        "epoch": rec["epoch"],
        "mre_mm": rec["val_mre_mm"],
        "train_loss": rec["train_loss"],
        "reward": rec["reward"],
        "stopped": rec["stopped"],
        "sigma": rec["sigma"],
        "sigma_next": rec["sigma_next"],
        "val_err": rec["val_per_landmark_mre_mm"],
        "ended": rec["ended"],
        "images_per_s": rec["images_per_s"],
        "policy_latency_ms": rec.get("policy_latency_ms"),
        "policy_failed": rec.get("policy_failed", False),
        "trial_epochs": rec.get("trial_epochs", 1),
        "policy_latencies_ms": rec.get("policy_latencies_ms"),
    }
    out.update({f"sdr_{k.replace('.', '_')}": v for k, v in rec["val_sdr"].items()})
    if rec.get("sigma_cov") is not None:
        out["sigma/cov"] = rec["sigma_cov"]
    return out


def flatten_test(metrics: dict) -> dict:
    out = {
        "test_mre_mm": metrics["mre_mm"],
        "test_per_landmark_mre_mm": metrics["per_landmark_mre_mm"],
    }
    out.update({f"test_sdr_{k.replace('.', '_')}": v for k, v in metrics["sdr"].items()})
    if metrics.get("baseline_mean_mre_mm") is not None:
        out["baseline_mean_mre_mm"] = metrics["baseline_mean_mre_mm"]
    splits = metrics.get("splits") or {metrics.get("test_split") or "test": metrics}
    for split, m in splits.items():
        for key in ("errors_mm", "pred_px"):
            if key in m:
                out[f"test/{split}/{key}"] = m[key]
    return out


def make_trainer(exp: ExperimentConfig, run: dict, trial_id: str):
    if run.get("simulated") and int(run.get("pack", 1)) > 1:
        from distlmk.train.simulated import PackedSimulatedTrainer

        return PackedSimulatedTrainer(exp, trial_id, int(run["pack"]), float(run.get("epoch_seconds", 0.0)))
    if run.get("simulated"):
        from distlmk.train.simulated import SimulatedTrainer

        return SimulatedTrainer(
            exp, trial_id=trial_id, epoch_seconds=float(run.get("epoch_seconds", 0.0))
        )
    from distlmk.train.trainer import Trainer

    return Trainer(exp, trial_id=trial_id)


def train_trial(config: dict, run: dict) -> None:
    """`config` is what Tune searches/mutates (trial, lr); `run` is shared by every trial
    (experiment settings, resources, simulation), passed with tune.with_parameters."""
    for name in ("ray.tune", "ray.train"):  # no "checkpoint created" line per epoch
        logging.getLogger(name).setLevel(logging.WARNING)
    exp = trial_experiment(config, run)
    gpu = float(run.get("gpu", 0.0))
    if gpu > 0 and torch.cuda.is_available():
        # fractional GPUs share memory: cap this trial's share so packed trials do not OOM each other
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu))
    trial_id = tune.get_context().get_trial_id()
    trainer = make_trainer(exp, run, trial_id)
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(Path(d) / CHECKPOINT_FILE))
        if "lr" in config:
            trainer.set_lr(float(config["lr"]))
    t = config["trial"]
    tags = {
        "method": t["method"],
        "variant": t["variant"],
        "seed": int(t["seed"]),
        "device": str(trainer.device),
    }
    faults = [f for f in run.get("faults") or [] if not f["trials"] or t.get("index") in f["trials"]]
    while not trainer.done:
        trainer.poison_loss = any(f["kind"] == "nan" and f["epoch"] == trainer.epoch + 1 for f in faults)
        rec = trainer.run_epoch()
        metrics = {**tags, **flatten_record(rec)}
        if trainer.done:
            metrics.update(flatten_test(trainer.test_metrics()))
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer.state_dict(), Path(d) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        if ckpt is None:  # injected crashes hit the first attempt only; a retry resumes and finishes
            _crash_if_asked(faults, rec["epoch"])


def _crash_if_asked(faults: list[dict], epoch: int) -> None:
    for f in faults:
        if f["epoch"] == epoch and f["kind"] == "raise":
            raise RuntimeError(f"injected failure after epoch {epoch}")
        if f["epoch"] == epoch and f["kind"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
