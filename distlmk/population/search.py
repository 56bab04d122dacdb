"""`distlmk search`: the population on Ray Tune with the central policy (typed config ->
Tuner -> ResultGrid -> records, summary and report)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ray
from ray import tune

from distlmk import schema as S
from distlmk.atomic import atomic_write_json
from distlmk.config import ConfigError, SearchConfig, to_dict
from distlmk.population.records import RecordsCallback
from distlmk.population.trainable import train_trial

log = logging.getLogger("distlmk.search")


def trial_list(cfg: SearchConfig) -> list[dict]:
    """(method, seed, sigma) combinations: the same seeds and budget for every method."""
    trials = []
    for seed in cfg.seeds:
        for method in cfg.methods:
            if method == "fixed":
                trials += [
                    {"method": "fixed", "seed": seed, "sigma_init": s, "variant": f"fixed σ={s:g}"}
                    for s in cfg.fixed_sigmas
                ]
            elif method == "rl":
                trials += [
                    {
                        "method": "rl",
                        "seed": seed,
                        "sigma_init": None,
                        "variant": "rl",
                        "replica": r,
                    }
                    for r in range(cfg.rl_trials_per_seed)
                ]
            else:
                trials.append(
                    {"method": method, "seed": seed, "sigma_init": None, "variant": method}
                )
        for v in cfg.variants:
            trials += [
                {"method": v.method, "seed": seed, "sigma_init": None, "variant": v.name, "sigma": dict(v.sigma),
                 "replica": r}
                for r in range(v.replicas)
            ]
    for i, t in enumerate(trials):
        t["index"] = i
    return trials


def validate(cfg: SearchConfig) -> None:
    if not (cfg.methods or cfg.variants) or not cfg.seeds:
        raise ConfigError("methods (or variants) and seeds must not be empty")
    if cfg.scheduler.name == "pbt" and len(set(cfg.methods) | {v.method for v in cfg.variants}) > 1:
        raise ConfigError(
            "scheduler.name: pbt copies checkpoints and configs between trials, which would mix methods; "
            "use pbt with a single method, or asha/none to compare methods"
        )
    if "fixed" in cfg.methods and not cfg.fixed_sigmas:
        raise ConfigError("fixed_sigmas: give at least one sigma for the fixed method")


def uses_policy(cfg: SearchConfig) -> bool:
    """Whether any trial is an rl trial (then the central policy server runs)."""
    return "rl" in cfg.methods or any(v.method == "rl" for v in cfg.variants)


def policy_server_name(cfg: SearchConfig) -> str:
    return f"{cfg.experiment.sigma.rl.server_name}:{cfg.name}"


def build_scheduler(cfg: SearchConfig):
    s = cfg.scheduler
    if s.name == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="training_iteration",
            max_t=cfg.experiment.train.epochs,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    if s.name == "pbt":
        return tune.schedulers.PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=s.perturbation_interval,
            hyperparam_mutations=pbt_space(cfg),
        )
    return None


def pbt_space(cfg: SearchConfig) -> dict:
    """What PBT samples and mutates: train.lr, or sigma as a global scale x per-landmark factors."""
    s = cfg.scheduler
    if s.pbt_mutate == "lr":
        return {"lr": tune.loguniform(*s.lr_range)}
    space = {"sigma_scale": tune.loguniform(*s.sigma_scale_range)}
    for k in range(cfg.experiment.data.num_landmarks):
        space[f"sigma_factor_{k}"] = tune.loguniform(*s.sigma_factor_range)
    return space


def _storage(out_dir: str) -> tuple[str, bool]:
    """Absolute storage path (Tune rejects relative ones) or a URI as given."""
    if "://" in out_dir:
        return out_dir, False
    return str(Path(out_dir).expanduser().resolve()), True


def _init_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    else:  # embedded local Ray: loopback only, no dashboard
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=True)


def run_search(cfg: SearchConfig, out_dir: str = "results", address: str | None = None, resume: bool = False,
               quiet: bool = False) -> Path:
    validate(cfg)
    # Tune warns on every forced snapshot when num_to_keep is set; our checkpoints are per epoch by design
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # see keep_checkpoints below
    storage, is_local = _storage(out_dir)
    exp_dir = Path(storage) / cfg.name if is_local else Path.home() / "distlmk_runs" / cfg.name
    if is_local and not resume and exp_dir.exists():  # a fresh run never mixes with an old one
        old = exp_dir.with_name(
            f"{exp_dir.name}.{time.strftime('%Y%m%d-%H%M%S', time.localtime(exp_dir.stat().st_mtime))}"
        )
        exp_dir.rename(old)
        print(f"moved the previous experiment to {old}")
    names = None
    if not cfg.simulated:  # fail on bad data before any compute is spent (and warm the cache)
        from distlmk.data import load_dataset

        names = load_dataset(cfg.experiment.data).landmark_names
    _init_ray(address)
    gpus = ray.cluster_resources().get("GPU", 0)
    resources = {"cpu": cfg.resources.cpu}
    if gpus > 0 and cfg.resources.gpu > 0:
        resources["gpu"] = cfg.resources.gpu
    experiment = to_dict(cfg.experiment)
    experiment["sigma"]["rl"]["server_name"] = policy_server_name(cfg)
    if "gpu" not in resources:
        experiment["train"]["device"] = (
            "cpu" if experiment["train"]["device"] == "auto" else experiment["train"]["device"]
        )
    run = {
        "experiment": experiment,
        "simulated": cfg.simulated,
        "epoch_seconds": cfg.simulated_epoch_seconds,
        "cpu": resources["cpu"],
        "gpu": resources.get("gpu", 0.0),
        "faults": [to_dict(f) for f in cfg.faults],
        "pack": cfg.simulated_pack if cfg.simulated else 1,
    }
    param_space = {"trial": tune.grid_search(trial_list(cfg))}
    if cfg.scheduler.name == "pbt":
        param_space.update(pbt_space(cfg))

    server = None
    if uses_policy(cfg):
        from distlmk.policy.server import start_policy_server

        server = start_policy_server(
            policy_server_name(cfg), cfg.policy, str(exp_dir / "policy"), cfg.experiment.sigma
        )
        ray.get(server.ping.remote())  # wait until the RLModule and Learner are built
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(exp_dir / "search_config.json", to_dict(cfg))
    if names:
        atomic_write_json(exp_dir / "landmark_names.json", names)

    trainable = tune.with_resources(tune.with_parameters(train_trial, run=run), resources)
    exp_path = f"{storage.rstrip('/')}/{cfg.name}"
    t0 = time.time()
    if resume:
        if not tune.Tuner.can_restore(exp_path):
            raise FileNotFoundError(f"{exp_path}: no experiment to resume; run without --resume")
        tuner = tune.Tuner.restore(
            exp_path, trainable=trainable, resume_errored=True, resume_unfinished=True
        )
    else:
        # Tune deletes checkpoints beyond num_to_keep at once, but snapshots its experiment state
        # only every TUNE_GLOBAL_CHECKPOINT_S (>= 10 s by default): a driver killed in between
        # resumes from a deleted checkpoint. Snapshot every second and keep a few; PBT keeps all.
        keep = None if cfg.scheduler.name == "pbt" or cfg.keep_checkpoints == 0 else cfg.keep_checkpoints
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=S.TUNE_METRIC,
                mode=S.TUNE_MODE,
                scheduler=build_scheduler(cfg),
                max_concurrent_trials=cfg.max_concurrent or None,
            ),
            run_config=tune.RunConfig(
                name=cfg.name,
                storage_path=storage,
                verbose=0 if quiet else 1,
                callbacks=[RecordsCallback(str(exp_dir))],
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
            ),
        )
    grid = tuner.fit()
    policy_stats = None
    if server is not None:
        policy_stats = ray.get(server.flush_training.remote())
        ray.get(server.checkpoint_now.remote())
        ray.get(server.save.remote(str(exp_dir / "policy" / "final")))
        atomic_write_json(exp_dir / "policy_stats.json", policy_stats)
        atomic_write_json(exp_dir / "policy_history.json", ray.get(server.update_history.remote()))
    from distlmk.analysis.summary import write_summary_and_report

    summary = write_summary_and_report(
        exp_dir, cfg.resources.cpu, resources.get("gpu", 0.0), policy_stats, cfg.name
    )
    elapsed = time.time() - t0
    atomic_write_json(
        exp_dir / "run_info.json",
        {
            "elapsed_s": elapsed,
            "started_at": t0,
            "num_trials": len(grid),
            "num_errors": grid.num_errors,
            "resources_per_trial": resources,
            "cluster_resources": ray.cluster_resources(),
            "address": address or "local",
            "pid": os.getpid(),
        },
    )
    if not quiet:
        print(f"\n{len(summary)} trials in {elapsed:.0f} s; report: {exp_dir / 'report.md'}")
        print((exp_dir / "report.md").read_text())
    return exp_dir

