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

from distlmk import schema as S
from distlmk.config import ExperimentConfig, FaultConfig
from distlmk.population.spec import RunSpec, TrialSpec
from distlmk.train.base import EpochTrainer
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FILE = "trainer.pt"
ATTEMPT_FILE = "attempt.json"  # beside trainer.pt: which start of the trial wrote the checkpoint (0 = first)
RESTORES_FILE = "distlmk_restores.jsonl"  # in the trial's folder: one line per start from a checkpoint
METRICS_FILE = "metrics.json"  # beside trainer.pt: the result reported with it (population.resume reads it)


def trial_experiment(spec: TrialSpec, config: dict, run: RunSpec) -> ExperimentConfig:
    """The ExperimentConfig of one trial: shared settings, its grid point, and what Tune mutates."""
    exp = run.experiment_for(spec, config.get("lr"))
    if "sigma_scale" in config:  # PBT on sigma: the trial's sigma vector comes from its config
        exp.sigma.per_landmark = pbt_sigma(config, exp)
    return exp


def pbt_sigma(config: dict, exp: ExperimentConfig) -> list[float]:
    """sigma.init x global scale x per-landmark factor, clipped to the sigma range."""
    base = exp.sigma.per_landmark or [exp.sigma.init] * exp.data.num_landmarks
    scale = float(config["sigma_scale"])
    return [min(max(b * scale * float(config.get(f"sigma_factor_{k}", 1.0)), exp.sigma.min), exp.sigma.max)
            for k, b in enumerate(base)]


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
    exp = trial_experiment(spec, config, run)
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
        if "sigma_scale" in config:  # a PBT exploit: the donor's weights with this trial's (mutated) sigma,
            trainer.controller.load_state_dict({"sigma": list(exp.sigma.per_landmark)})  # scaled once, above
        _mark_restore(trial_id, attempt, trainer.epoch)
    tags = {S.METHOD: spec.method, S.VARIANT: spec.variant, S.SEED: int(spec.seed), S.DEVICE: str(trainer.device),
            S.COST_EPOCH_BUDGET: exp.train.epochs}
    if "pbt" in config:  # exploited by PBT: its own identity, the donor's weights
        tags.update({f"pbt/{k}": v for k, v in config["pbt"].items()})
    faults = [f for f in run.faults_for(spec) if not f.attempts or attempt in f.attempts]
    while not trainer.done:
        trainer.poison_loss = any(f.kind == "nan" and f.epoch == trainer.epoch + 1 for f in faults)
        rec = trainer.run_epoch()
        metrics = {**tags, **rec}
        if trainer.done and exp.train.evaluate_test:
            metrics.update(trainer.test_record())
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer.state_dict(), Path(d) / CHECKPOINT_FILE)
            (Path(d) / ATTEMPT_FILE).write_text(json.dumps({"attempt": attempt}))
            (Path(d) / METRICS_FILE).write_text(json.dumps(metrics, default=_plain))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        _crash_if_asked(faults, rec[S.EPOCH])


def _plain(v):
    return v.tolist() if hasattr(v, "tolist") else str(v)  # numpy arrays and scalars


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
