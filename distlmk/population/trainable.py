"""The Tune trial: one landmark network (or its cost model) trained with one sigma controller.

Resumes from `tune.get_checkpoint()` (failure retry, PBT exploit, `Tuner.restore`) and
reports every epoch with a checkpoint, so nothing computed is lost.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from distlmk.config import ExperimentConfig, FaultConfig
from distlmk.population.spec import RunSpec, TrialSpec
from distlmk.train.base import EpochTrainer
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FILE = "trainer.pt"
ATTEMPT_FILE = "attempt.json"  # beside trainer.pt: which start of the trial wrote the checkpoint (0 = first)
RESTORES_FILE = "distlmk_restores.jsonl"  # in the trial's folder: one line per start from a checkpoint


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
    return out


def flatten_test(metrics: dict) -> dict:
    out = {
        "test_mre_mm": metrics["mre_mm"],
        "test_per_landmark_mre_mm": metrics["per_landmark_mre_mm"],
    }
    out.update({f"test_sdr_{k.replace('.', '_')}": v for k, v in metrics["sdr"].items()})
    if metrics.get("baseline_mean_mre_mm") is not None:
        out["baseline_mean_mre_mm"] = metrics["baseline_mean_mre_mm"]
    return out


def make_trainer(exp: ExperimentConfig, run: RunSpec, trial_id: str) -> EpochTrainer:
    sim = run.simulation
    if sim.enabled and sim.pack > 1:
        from distlmk.train.simulated import PackedSimulatedTrainer

        return PackedSimulatedTrainer(exp, trial_id, sim.pack, sim.epoch_seconds)
    if sim.enabled:
        from distlmk.train.simulated import SimulatedTrainer

        return SimulatedTrainer(exp, trial_id=trial_id, epoch_seconds=sim.epoch_seconds)
    from distlmk.train.trainer import Trainer

    return Trainer(exp, trial_id=trial_id)


def train_trial(config: dict, run: RunSpec) -> None:
    """`config` is what Tune searches/mutates (trial, lr, pbt lineage); `run` is shared by every
    trial (experiment settings, resources, simulation, faults), passed with tune.with_parameters."""
    for name in ("ray.tune", "ray.train"):  # no "checkpoint created" line per epoch
        logging.getLogger(name).setLevel(logging.WARNING)
    spec = TrialSpec.from_config(config["trial"])
    exp = run.experiment_for(spec, config.get("lr"))
    if run.gpu > 0 and torch.cuda.is_available():
        # fractional GPUs share memory: cap this trial's share so packed trials do not OOM each other
        torch.cuda.set_per_process_memory_fraction(min(1.0, run.gpu))
    trial_id = tune.get_context().get_trial_id()
    trainer = make_trainer(exp, run, trial_id)
    attempt = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(Path(d) / CHECKPOINT_FILE))
            attempt = _read_attempt(Path(d)) + 1
        if "lr" in config:
            trainer.set_lr(float(config["lr"]))
        _mark_restore(trial_id, attempt, trainer.epoch)
    tags = {"method": spec.method, "variant": spec.variant, "seed": int(spec.seed), "device": str(trainer.device)}
    if "pbt" in config:  # exploited by PBT: its own identity, the donor's weights
        tags.update({f"pbt/{k}": v for k, v in config["pbt"].items()})
    faults = [f for f in run.faults_for(spec) if not f.attempts or attempt in f.attempts]
    while not trainer.done:
        trainer.poison_loss = any(f.kind == "nan" and f.epoch == trainer.epoch + 1 for f in faults)
        rec = trainer.run_epoch()
        metrics = {**tags, **flatten_record(rec)}
        if trainer.done:
            metrics.update(flatten_test(trainer.test_metrics()))
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer.state_dict(), Path(d) / CHECKPOINT_FILE)
            (Path(d) / ATTEMPT_FILE).write_text(json.dumps({"attempt": attempt}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        _crash_if_asked(faults, rec["epoch"])


def _read_attempt(ckpt_dir: Path) -> int:
    f = ckpt_dir / ATTEMPT_FILE
    return int(json.loads(f.read_text())["attempt"]) if f.is_file() else 0


def _mark_restore(trial_id: str, attempt: int, epoch: int) -> None:
    """A marker, independent of the records, that this trial restarted from a checkpoint."""
    try:
        trial_dir = Path(tune.get_context().get_trial_dir())
        with (trial_dir / RESTORES_FILE).open("a") as fh:
            fh.write(json.dumps({"trial_id": trial_id, "attempt": attempt, "epoch": epoch, "pid": os.getpid(),
                                 "node_id": ray.get_runtime_context().get_node_id(), "time": time.time()}) + "\n")
    except OSError:  # a marker only; never fail the trial for it
        pass


def _crash_if_asked(faults: list[FaultConfig], epoch: int) -> None:
    for f in faults:
        if f.epoch == epoch and f.kind == "raise":
            raise RuntimeError(f"injected failure after epoch {epoch}")
        if f.epoch == epoch and f.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
