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

from distlmk import schema as S
from distlmk.config import ExperimentConfig, from_dict, to_dict
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_FILE = "trainer.pt"


def trial_experiment(config: dict, run: dict) -> ExperimentConfig:
    """The ExperimentConfig of one trial: shared settings + this trial's method/seed/sigma/lr."""
    exp = from_dict(ExperimentConfig, run["experiment"], "experiment")
    t = config["trial"]
    if t.get("sigma"):  # the variant's own sigma settings (per-landmark vector, schedule, rl options)
        exp.sigma = from_dict(type(exp.sigma), deep_merge(to_dict(exp.sigma), t["sigma"]), f"variant {t['variant']}.sigma")
    exp.sigma.method = t["method"]
    exp.train.seed = int(t["seed"])
    if t.get("sigma_init") is not None:
        exp.sigma.init = float(t["sigma_init"])
    if "lr" in config:
        exp.train.lr = float(config["lr"])
    if "sigma_scale" in config:  # PBT on sigma: the trial's sigma vector comes from its config
        exp.sigma.per_landmark = pbt_sigma(config, exp)
    exp.train.torch_threads = max(1, int(run.get("cpu", 1)))
    return exp


def deep_merge(base: dict, over: dict) -> dict:
    """`base` with `over`'s keys replaced, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def pbt_sigma(config: dict, exp: ExperimentConfig) -> list[float]:
    """sigma.init x global scale x per-landmark factor, clipped to the sigma range."""
    base = exp.sigma.per_landmark or [exp.sigma.init] * exp.data.num_landmarks
    scale = float(config["sigma_scale"])
    return [min(max(b * scale * float(config.get(f"sigma_factor_{k}", 1.0)), exp.sigma.min), exp.sigma.max)
            for k, b in enumerate(base)]


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
        if "sigma_scale" in config:  # a PBT exploit: the donor's weights with this trial's (mutated) sigma
            trainer.controller.load_state_dict({"sigma": pbt_sigma(config, exp)})
    t = config["trial"]
    tags = {
        "method": t["method"],
        "variant": t["variant"],
        "seed": int(t["seed"]),
        "device": str(trainer.device),
        S.COST_EPOCH_BUDGET: exp.train.epochs,
    }
    faults = [f for f in run.get("faults") or [] if not f["trials"] or t.get("index") in f["trials"]]
    while not trainer.done:
        trainer.poison_loss = any(f["kind"] == "nan" and f["epoch"] == trainer.epoch + 1 for f in faults)
        rec = trainer.run_epoch()
        metrics = {**tags, **rec}
        if trainer.done and exp.train.evaluate_test:
            metrics.update(trainer.test_record())
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
