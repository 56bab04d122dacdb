"""`distlmk search`: the population on Ray Tune with the central policy.

`run_search` reads top to bottom as its steps: plan every trial (the config checked, the data
loaded for its landmark count; `population.plan`), rotate the old experiment folder, start Ray, start the policy, build (or restore) the Tuner, fit, save the policy,
write run info, release the policy (also when a step fails). The report is analysis: the
command layer (`distlmk.cli`) writes it from the files this leaves behind.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from ray import tune
from ray.tune.experiment import Trial

from distlmk import rundir
from distlmk import schema as S
from distlmk.atomic import atomic_write_json
from distlmk.config import SearchConfig, to_dict, validate_search
from distlmk.config.load import PBT_SCHEDULERS
from distlmk.control.rl import board_name
from distlmk.population.localray import init_ray
from distlmk.population.plan import (
    BOARD_METHODS,
    TrialPlan,
    fit_to_resources,
    plan_trials,
    policy_server_name,
    uses_policy,
)
from distlmk.population.records import RecordsCallback
from distlmk.population.resume import AdoptTrialCheckpoints
from distlmk.population.spec import RunSpec
from distlmk.population.trainable import train_trial

log = logging.getLogger("distlmk.search")


@dataclass
class SearchOutcome:
    """What a finished `run_search` hands to the command layer."""

    exp_dir: Path  # the experiment folder (records, policy, run info: `distlmk.rundir`)
    num_trials: int
    num_errors: int  # trials that ended in error (after their retries)
    resources: dict  # per trial: {"cpu": .., "gpu": ..}
    policy_stats: dict | None  # the central policy's final stats (None without rl)
    elapsed_s: float


# --- schedulers ---------------------------------------------------------------------------


class _KeepsIdentity:
    """Mixin for Tune's PBT and PB2: an exploit copies the donor's checkpoint and (mutated)
    hyperparameters, but not its identity.

    Tune's exploit replaces the whole config by the donor's, `trial` entry included, which
    would relabel the trial as the donor's seed/variant. Here a trial keeps its own `trial`
    (its plan: method, seed, variant, index, experiment) and its trial id, and `pbt` records
    the lineage: the last donor's trial id and index, and how many exploits it went through.
    The records carry these as `pbt/donor`, `pbt/donor_index`, `pbt/exploits`.

    Nothing is exploited or offered as a donor at the last epoch (`max_t`): an exploit there
    would replace a finished trial by its donor's final checkpoint, with no epoch left to
    train (and no record to carry the lineage), and a donor's final checkpoint would give an
    exploited trial nothing to train either.
    """

    def __init__(self, *args, max_t: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_t = max_t

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self.max_t:
            return tune.schedulers.TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller, trial, trial_to_clone):
        # Ray 2.58: synchronous PBT pauses every member that reaches the sync point, with a save. When
        # the last member's result starts the exploit while an exploited member's save is still out,
        # pausing it again (without a save) caches a STOP, and the member is terminated after its first
        # result from the donor's checkpoint (ray-project/ray#57906; fix proposed in #61448). The save
        # still out is of the member's own checkpoint, which the exploit replaces by the donor's: drop
        # it first, so the pause leaves nothing cached. `test_population` replays this on Tune's code.
        if trial.status == Trial.RUNNING and trial.is_saving:
            trial.temporary_state.saving_to = None
        super()._exploit(tune_controller, trial, trial_to_clone)

    def _get_new_config(self, trial, trial_to_clone):
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        new_config["trial"] = dict(trial.config["trial"])
        new_config["pbt"] = {
            "donor": trial_to_clone.trial_id,
            "donor_index": int(trial_to_clone.config["trial"]["index"]),
            "exploits": int(trial.config.get("pbt", {}).get("exploits", 0)) + 1,
        }
        return new_config, operations


class IdentityKeepingPBT(_KeepsIdentity, tune.schedulers.PopulationBasedTraining):
    """Tune's PBT (random perturbation of `pbt_space`) keeping each trial's identity on exploit."""


def _identity_keeping_pb2():
    from ray.tune.schedulers.pb2 import PB2  # imported when used: GPy / scikit-learn behind it

    class IdentityKeepingPB2(_KeepsIdentity, PB2):
        """Tune's PB2 (a GP bandit chooses the explored values within bounds, Parker-Holder et al.
        2020) keeping each trial's identity on exploit."""

    return IdentityKeepingPB2


def build_scheduler(cfg: SearchConfig, num_landmarks: int):
    s = cfg.scheduler
    if s.name in PBT_SCHEDULERS:  # Tune draws the first sample of the space (NumPy) and PBT's and PB2's
        random.seed(s.seed)  # explore steps (Python, NumPy) from the driver's global generators: seed them.
        np.random.seed(s.seed)  # (Each PBT/PB2 stage of a compare starts from the same state; a resume is not reseeded.)
    if s.name == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg.experiment.train.epochs,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    if s.name == "pbt":
        return IdentityKeepingPBT(
            time_attr="training_iteration",
            max_t=cfg.experiment.train.epochs,
            perturbation_interval=s.perturbation_interval,
            synch=s.pbt_synch,
            hyperparam_mutations=pbt_space(cfg, num_landmarks),
        )
    if s.name == "pb2":
        return _identity_keeping_pb2()(
            time_attr="training_iteration",
            max_t=cfg.experiment.train.epochs,
            perturbation_interval=s.perturbation_interval,
            synch=s.pbt_synch,
            hyperparam_bounds=pb2_bounds(cfg, num_landmarks),
        )
    return None


def pbt_space(cfg: SearchConfig, num_landmarks: int) -> dict:
    """What PBT (and PB2) sample and mutate: train.lr, or sigma as a global scale x one factor per
    landmark of the loaded data (`num_landmarks`, the plan's count)."""
    s = cfg.scheduler
    if s.pbt_mutate == "lr":
        return {"lr": tune.loguniform(*s.lr_range)}
    space = {"sigma_scale": tune.loguniform(*s.sigma_scale_range)}
    for k in range(num_landmarks):
        space[f"sigma_factor_{k}"] = tune.loguniform(*s.sigma_factor_range)
    return space


def pb2_bounds(cfg: SearchConfig, num_landmarks: int) -> dict:
    """PB2's `hyperparam_bounds`: the ranges of `pbt_space`, [low, high] each."""
    s = cfg.scheduler
    if s.pbt_mutate == "lr":
        return {"lr": list(s.lr_range)}
    return {"sigma_scale": list(s.sigma_scale_range),
            **{f"sigma_factor_{k}": list(s.sigma_factor_range) for k in range(num_landmarks)}}


def progress_reporter(cfg: SearchConfig) -> tune.CLIReporter:
    """Tune's live table: who a trial is (method, variant, seed) and how it does (epoch, val MRE).

    Tune 2.58's default console output infers its columns (the whole `trial` dict, the first
    four numeric metrics) and ignores a passed reporter; `RAY_AIR_NEW_OUTPUT=0` selects the
    reporter API, which takes these columns (set only around `fit`, see `_table_output`)."""
    return tune.CLIReporter(
        parameter_columns={"trial/method": "method", "trial/variant": "variant", "trial/seed": "seed"},
        metric_columns={S.EPOCH: "epoch", S.TUNE_METRIC: "val MRE mm"},
        max_report_frequency=int(max(1, cfg.progress_every_s)),
        sort_by_metric=False,
        print_intermediate_tables=True,  # else decided from Tune's global verbosity when this is built
    )


@contextlib.contextmanager
def _table_output(enabled: bool):
    """Within: Tune prints through the reporter API (our columns) instead of its inferred table."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    if enabled:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


# --- the steps of a search ----------------------------------------------------------------


def experiment_paths(cfg: SearchConfig, out_dir: str) -> tuple[str, Path, bool]:
    """(storage path or URI for Tune, local experiment folder, storage is local).
    Tune rejects relative storage paths, so a local one is made absolute."""
    if "://" in out_dir:
        return out_dir, Path.home() / "distlmk_runs" / cfg.name, False
    storage = str(Path(out_dir).expanduser().resolve())
    return storage, Path(storage) / cfg.name, True


def rotate_old_experiment(exp_dir: Path) -> Path | None:
    """A fresh run never mixes with an old one: move the old folder aside, named by its time."""
    if not exp_dir.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(exp_dir.stat().st_mtime))
    old = exp_dir.with_name(f"{exp_dir.name}.{stamp}")
    exp_dir.rename(old)
    print(f"moved the previous experiment to {old}")
    return old


def data_draws(cfg: SearchConfig) -> list:
    """The DataConfig of every distinct data draw the trials read (one unless seeds vary the data)."""
    if cfg.seed_varies == "network":
        return [cfg.experiment.data]
    return [dataclasses.replace(cfg.experiment.data, synth_seed=int(s)) for s in sorted(set(cfg.seeds))]


def validate_data(cfg: SearchConfig) -> list[str] | None:
    """Fail on bad data before any compute is spent (and warm the cache of every draw); the landmark
    names (None for simulated trials, which load no data)."""
    if cfg.simulation.enabled:
        return None
    from distlmk.data import load_dataset

    return list([load_dataset(d) for d in data_draws(cfg)][0].landmark_names)


def plan_search(cfg: SearchConfig) -> tuple[list[TrialPlan], list[str] | None]:
    """Every trial's plan, from the config and the loaded data (before Ray starts); the landmark names.
    Simulated trials load no data: their landmark count is data.num_landmarks."""
    validate_search(cfg)  # the config's own rules first: no data loaded for a config that is wrong anyway
    names = validate_data(cfg)
    return plan_trials(cfg, len(names) if names is not None else cfg.experiment.data.num_landmarks), names


def trial_resources(cfg: SearchConfig) -> dict:
    resources = {"cpu": cfg.resources.cpu}
    if ray.cluster_resources().get("GPU", 0) > 0 and cfg.resources.gpu > 0:
        resources["gpu"] = cfg.resources.gpu
    return resources


def run_spec(cfg: SearchConfig, resources: dict) -> RunSpec:
    simulation = cfg.simulation if cfg.simulation.enabled else type(cfg.simulation)()
    return RunSpec(gpu=resources.get("gpu", 0.0), simulation=simulation, faults=list(cfg.faults.inject))


def start_policy(cfg: SearchConfig, exp_dir: Path, plans: list[TrialPlan]):
    """The central policy actor (only when rl or landmark_pbt trials run), ready to answer, told how
    many members each board's population has (so the first posts wait for peers not yet seen)."""
    if not uses_policy(cfg):
        return None
    from distlmk.policy.server import start_policy_server

    trains = "rl" in cfg.all_methods()
    policy = cfg.policy if trains else dataclasses.replace(cfg.policy, pretrain_rounds=0)  # board only: no warm start
    server = start_policy_server(policy_server_name(cfg), policy, str(rundir.policy_dir(exp_dir)), cfg.experiment.sigma)
    ray.get(server.ping.remote())  # wait until the RLModule and Learner are built
    members = collections.Counter(board_name(p.experiment.sigma) for p in plans if p.method in BOARD_METHODS)
    ray.get(server.expect.remote(dict(members)))
    return server


def build_tuner(cfg: SearchConfig, plans: list[TrialPlan], trainable, storage: str, exp_dir: Path, resume: bool,
                quiet: bool, extra_callbacks: list | None = None):
    exp_path = f"{storage.rstrip('/')}/{cfg.name}"
    if resume:
        if not tune.Tuner.can_restore(exp_path):
            raise FileNotFoundError(f"{exp_path}: no experiment to resume; run without --resume")
        return tune.Tuner.restore(exp_path, trainable=trainable, resume_errored=True, resume_unfinished=True)
    param_space = {"trial": tune.grid_search([p.as_config() for p in plans])}
    num_landmarks = plans[0].num_landmarks
    if cfg.scheduler.name in PBT_SCHEDULERS:
        param_space.update(pbt_space(cfg, num_landmarks))
    # Tune deletes checkpoints beyond num_to_keep at once but snapshots its experiment state only
    # every experiment_snapshot_s: keep a few and snapshot often; PBT/PB2 keep all (they need them).
    keep = None if cfg.scheduler.name in PBT_SCHEDULERS or cfg.keep_checkpoints == 0 else cfg.keep_checkpoints
    records = RecordsCallback(str(exp_dir))  # kept in the Tuner's state: --resume finds both again
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=S.TUNE_METRIC,
            mode=S.TUNE_MODE,
            scheduler=build_scheduler(cfg, num_landmarks),
            max_concurrent_trials=cfg.max_concurrent or None,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=storage,
            verbose=0 if quiet else 1,
            progress_reporter=None if quiet else progress_reporter(cfg),
            callbacks=[records, AdoptTrialCheckpoints(records), *(extra_callbacks or [])],
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
        ),
    )


def save_policy(server, exp_dir: Path) -> dict | None:
    """Train on what is left, then save the policy's final weights, stats and update history."""
    if server is None:
        return None
    stats = ray.get(server.flush_training.remote())
    ray.get(server.checkpoint_now.remote())
    ray.get(server.save.remote(str(rundir.final_policy(exp_dir))))
    atomic_write_json(exp_dir / rundir.POLICY_STATS, stats)
    atomic_write_json(exp_dir / rundir.POLICY_HISTORY, ray.get(server.update_history.remote()))
    return stats


def release_policy(server) -> None:
    """End the population's policy actor once its weights and stats are saved (or the search failed):
    the next population in this driver (a compare stage, an ablation size) starts its own."""
    if server is not None:
        ray.kill(server)


def run_search(cfg: SearchConfig, out_dir: str = "results", address: str | None = None, resume: bool = False,
               quiet: bool = False, extra_callbacks: list | None = None) -> SearchOutcome:
    """The population: every step below, in order. `extra_callbacks` (Tune callbacks) observe it,
    e.g. the overhead benchmark's driver-side clock; they are not kept for `--resume`."""
    plans, names = plan_search(cfg)  # every config and data error, before Ray starts
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # per-epoch by design
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(cfg.experiment_snapshot_s)
    storage, exp_dir, is_local = experiment_paths(cfg, out_dir)
    if is_local and not resume:
        rotate_old_experiment(exp_dir)
    joined = init_ray(address, log_to_driver=True)
    resources = trial_resources(cfg)
    plans = [fit_to_resources(p, resources["cpu"], resources.get("gpu", 0.0)) for p in plans]
    server = start_policy(cfg, exp_dir, plans)
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(exp_dir / rundir.SEARCH_CONFIG, to_dict(cfg))
        if names:
            atomic_write_json(exp_dir / rundir.LANDMARK_NAMES, names)
        trainable = tune.with_resources(tune.with_parameters(train_trial, run=run_spec(cfg, resources)), resources)
        t0 = time.time()
        tuner = build_tuner(cfg, plans, trainable, storage, exp_dir, resume, quiet, extra_callbacks)
        with _table_output(not quiet):
            grid = tuner.fit()
        policy_stats = save_policy(server, exp_dir)
        outcome = SearchOutcome(exp_dir, len(grid), grid.num_errors, resources, policy_stats, time.time() - t0)
        atomic_write_json(
            exp_dir / rundir.RUN_INFO,
            {
                "elapsed_s": outcome.elapsed_s,
                "started_at": t0,
                "num_trials": outcome.num_trials,
                "num_errors": outcome.num_errors,
                "resources_per_trial": resources,
                "cluster_resources": ray.cluster_resources(),
                "address": address or "local",
                "ray": joined,
                "nodes": sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}),
                "pid": os.getpid(),
            },
        )
        return outcome
    finally:
        release_policy(server)
