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
from ray import tune

from distlmk import schema as S
from distlmk.config import ExperimentConfig, FaultConfig
from distlmk.population.plan import TrialPlan, apply_mutations
from distlmk.population.spec import RunSpec
from distlmk.rundir import ATTEMPT_FILE, CHECKPOINT_FILE, METRICS_FILE, RESTORES_FILE
from distlmk.train.base import EpochTrainer
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint


def make_trainer(exp: ExperimentConfig, run: RunSpec, trial_id: str) -> EpochTrainer:
    sim = run.simulation
    if sim.enabled and sim.pack > 1:
        from distlmk.sim.trainer import PackedSimulatedTrainer

        return PackedSimulatedTrainer(exp, trial_id, sim.pack, sim.epoch_seconds, sim.model)
    if sim.enabled:
        from distlmk.sim.trainer import SimulatedTrainer

        return SimulatedTrainer(exp, trial_id=trial_id, epoch_seconds=sim.epoch_seconds, model=sim.model)
    from distlmk.train.trainer import Trainer

    return Trainer(exp, trial_id=trial_id)


def train_trial(config: dict, run: RunSpec) -> None:
    """`config` is what Tune searches/mutates (the trial's plan, lr or sigma factors, pbt lineage);
    `run` is shared by every trial (simulation, faults, GPU share), passed with tune.with_parameters."""
    for name in ("ray.tune", "ray.train"):  # no "checkpoint created" line per epoch
        logging.getLogger(name).setLevel(logging.WARNING)
    plan = TrialPlan.from_config(config["trial"])
    exp = apply_mutations(plan, config)
    if run.gpu > 0 and not run.simulation.enabled:
        import torch  # here, not at the top: a simulated trial never loads torch

        if torch.cuda.is_available():
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
        restore_mutations(trainer, exp, config)
        _mark_restore(trial_id, attempt, trainer.epoch)
    tags = {S.METHOD: plan.method, S.VARIANT: plan.variant, S.SEED: plan.seed, S.DEVICE: str(trainer.device),
            S.COST_EPOCH_BUDGET: exp.train.epochs}
    if "pbt" in config:  # exploited by PBT: its own identity, the donor's weights
        tags.update({f"pbt/{k}": v for k, v in config["pbt"].items()})
    faults = [f for f in run.faults_for(plan.index) if not f.attempts or attempt in f.attempts]
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


def restore_mutations(trainer: EpochTrainer, exp: ExperimentConfig, config: dict) -> None:
    """After a restore (retry, PBT exploit, resume): the checkpoint's trainer state (a PBT donor's,
    perhaps) with this trial's own mutated values, as `apply_mutations` computed them from the plan."""
    if "lr" in config:
        trainer.set_lr(exp.train.lr)
    if "sigma_scale" in config:
        trainer.set_sigma(list(exp.sigma.per_landmark))


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
