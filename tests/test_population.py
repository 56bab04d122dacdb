"""A small population on Ray Tune: all four methods, the central policy, records and report."""

import json

import numpy as np
import pandas as pd
import pytest
from fault_checks import assert_pbt_identity, assert_records_match_checkpoints, error_texts, restores

from distlmk import schema as S
from distlmk.config import SearchConfig, from_dict
from distlmk.population.plan import plan_trials
from distlmk.runner import search


def run_search(cfg, **kw):  # the population and its report, as `distlmk search` runs them
    return search(cfg, **kw).exp_dir


def sim_search(tmp_path, name, **over):
    cfg = {
        "name": name,
        "simulation": {"enabled": True},
        "seeds": [0, 1],
        "fixed_sigmas": [2.0, 4.0],
        "methods": ["fixed", "learned", "adaloss", "rl"],
        "rl_trials_per_seed": 2,
        "experiment": {
            "data": {"num_landmarks": 6},
            "train": {"epochs": 8},
            "sigma": {"rl": {"min_progress_to_stop": 0.5}},
        },
        "resources": {"cpu": 0.5},
        "policy": {"train_batch_rows": 64, "minibatch_size": 32, "num_epochs": 2},
    }
    cfg.update(over)
    return from_dict(SearchConfig, cfg, "test")


def test_plan_is_fair():
    cfg = sim_search(None, "x")
    trials = plan_trials(cfg, 6)
    assert len(trials) == 2 * (2 + 1 + 1 + 2)
    for seed in (0, 1):
        assert {t.variant for t in trials if t.seed == seed} == {
            "fixed σ=2",
            "fixed σ=4",
            "learned",
            "adaloss",
            "rl",
        }


def test_simulated_population_end_to_end_with_failures(ray_session, tmp_path):
    cfg = sim_search(tmp_path, "pop", seeds=[0], faults={"inject": [{"kind": "raise", "epoch": 3}]})
    exp = run_search(cfg, out_dir=str(tmp_path))
    rec = pd.read_parquet(exp / "records.parquet")
    summary = pd.read_parquet(exp / "summary.parquet")
    report = (exp / "report.md").read_text()
    assert len(summary) == 6 and set(summary["status"]) <= {"completed", "stopped"}
    # every trial failed once, at epoch 3 (no rl trial may stop before epoch 4), as Tune itself saw it
    # (its per-trial error.txt), and started again from its epoch-3 checkpoint (the trial's restore marker)
    errors, restored = error_texts(exp), restores(exp)
    trials = set(summary["trial_id"])
    assert set(errors) == trials, f"{len(errors)} of 6 trials have Tune's error.txt"
    for tid, text in errors.items():
        assert text.count("Failure # ") == 1 and "injected failure after epoch 3" in text, (tid, text[-500:])
    assert set(restored) == trials, f"{len(restored)} of 6 trials were restored from a checkpoint"
    for tid, marks in restored.items():
        assert [(m["attempt"], m["epoch"]) for m in marks] == [(1, 3)], (tid, marks)
    # ... with nothing lost or duplicated: the records equal each trainer's own checkpointed history
    assert_records_match_checkpoints(exp, expect_epochs=8)
    assert not rec.duplicated(["trial_id", "iteration"]).any()
    for m in ("fixed", "learned", "adaloss", "rl"):
        assert f"| {m} |" in report
    rl = rec[rec["method"] == "rl"]
    sig = np.stack(rl["sigma/next"].to_numpy())
    assert sig.std(axis=1).max() > 0  # landmarks differ
    assert (
        np.abs(np.stack(rl["sigma/next"]) - cfg.experiment.sigma.init).max() > 0
    )  # sigmas changed
    assert rl["rl/reward"].notna().sum() > 0
    stats = json.loads((exp / "policy_stats.json").read_text())
    assert stats["updates"] >= 1 and stats["decisions"] > 0
    assert (exp / "policy" / "latest").is_dir()


def test_pbt_rejects_mixed_methods(tmp_path):
    from distlmk.config import ConfigError

    cfg = sim_search(tmp_path, "bad", scheduler={"name": "pbt"})
    with pytest.raises(ConfigError, match="pbt"):
        run_search(cfg, out_dir=str(tmp_path))


def test_pbt_exploits_truncate_episodes_without_crash(ray_session, tmp_path):
    # 4 seeds whose cost models keep their order (seed 0 worst, 4 best); synchronous PBT ranks all
    # four at epochs 2 and 4 and the worst (quantile 1/4: one trial) exploits the best each time
    cfg = sim_search(tmp_path, "pbt", methods=["rl"], seeds=[0, 1, 2, 4], rl_trials_per_seed=1,
                     simulation={"enabled": True, "epoch_seconds": 0.2},
                     scheduler={"name": "pbt", "perturbation_interval": 2})
    cfg.experiment.train.epochs = 6
    cfg.experiment.sigma.rl.min_progress_to_stop = 1.1  # no early stops: every trial lives through exploits
    exp = run_search(cfg, out_dir=str(tmp_path), quiet=True)
    rec = pd.read_parquet(exp / "records.parquet")
    summary = pd.read_parquet(exp / "summary.parquet")
    assert not rec.duplicated(["trial_id", "iteration"]).any()
    assert len(summary) == 4 and set(summary["status"]) == {"completed"}
    # Tune's own log of exploits (pbt_global.txt, a line each) against the trials' reports: an exploit
    # at epoch t restarts its target from the donor's epoch-t checkpoint, so the target's next report,
    # t + 1, is the first to count it. No exploit at the last epoch (there is nothing left to train).
    exploits = (exp / "pbt_global.txt").read_text().splitlines()
    assert len(exploits) == 2, "one exploit per perturbation (epochs 2 and 4)"
    first_after = rec.groupby([S.TRIAL_ID, "pbt/exploits"])[S.ITERATION].min()
    assert sorted(first_after) == [3, 5], first_after
    stats = json.loads((exp / "policy_stats.json").read_text())
    # 4 trials x 7 rows would be 28 episodes without exploits; each exploit truncates a trial's open ones
    assert stats["episodes"] > 4 * 7 and stats["open_episodes"] == 0
    assert_pbt_identity(exp, launched_seeds=[0, 1, 2, 4])  # exploited trials keep their identity, name the donor


def test_asha_population_runs(ray_session, tmp_path):
    cfg = sim_search(tmp_path, "asha", seeds=[0, 1], methods=["fixed"], fixed_sigmas=[1.0, 2.0, 4.0, 6.0],
                     scheduler={"name": "asha", "grace_period": 2, "reduction_factor": 2})
    exp = run_search(cfg, out_dir=str(tmp_path), quiet=True)
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 8 and "error" not in set(summary["status"])
    assert summary["epochs"].min() < cfg.experiment.train.epochs  # ASHA cut the weaker trials
    assert set(summary.loc[summary["epochs"] < cfg.experiment.train.epochs, "status"]) == {"cut"}


def test_exploiting_a_member_whose_save_is_still_out_leaves_it_paused_not_stopped():
    """Replays, on Tune's own controller code, the race that ended exploited members after one epoch:
    synchronous PBT exploits a member whose sync-point save has not come back yet. Tune 2.58's
    pause caches a STOP for it (ray-project/ray#57906), which our PBT drops before it pauses."""
    from types import SimpleNamespace

    from ray.train import Checkpoint
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pbt import _PBTTrialState

    from distlmk.population.search import IdentityKeepingPBT

    def replay(scheduler_exploit):
        controller = object.__new__(TuneController)  # Tune's pause/stop code on a controller without Ray
        target = Trial("__fake", config={"trial": {"index": 0}, "lr": 0.001}, stub=True, trial_id="target")
        donor = Trial("__fake", config={"trial": {"index": 3}, "lr": 0.002}, stub=True, trial_id="donor")
        target.set_status(Trial.RUNNING)  # reported the sync point; PBT's PAUSE waits for its save
        target.temporary_state.saving_to = object()
        controller._cached_trial_decisions = {"target": "PAUSE"}
        controller._trial_to_actor, controller._actor_to_trial = {target: "actor"}, {"actor": target}
        controller._actor_manager = SimpleNamespace(clear_actor_task_futures=lambda tracked_actor: None)
        controller._remove_actor = controller._mark_trial_to_checkpoint = lambda *a, **k: None
        controller._maybe_cache_trial_actor = lambda trial: False
        controller._set_trial_status = lambda trial, status: trial.set_status(status)
        pbt = IdentityKeepingPBT(time_attr="training_iteration", max_t=10, perturbation_interval=2, synch=True,
                                 hyperparam_mutations={"lr": [0.001, 0.002]}, metric="m", mode="min",
                                 log_config=False)
        for t, score in ((target, 2.0), (donor, 1.0)):
            pbt._trial_state[t] = _PBTTrialState(t)
            pbt._trial_state[t].last_score, pbt._trial_state[t].last_result = score, {"training_iteration": 2}
        pbt._trial_state[donor].last_checkpoint = Checkpoint("/tmp/donor-checkpoint")
        wrapper = SimpleNamespace(pause_trial=lambda trial, should_checkpoint=True: TuneController.pause_trial(
            controller, trial, should_checkpoint))
        scheduler_exploit(pbt, wrapper, target, donor)
        return target, controller._cached_trial_decisions

    target, cached = replay(IdentityKeepingPBT._exploit)
    assert target.status == Trial.PAUSED and "target" not in cached  # resumes from the donor, not stopped
    assert target.config["trial"] == {"index": 0} and target.config["pbt"]["donor"] == "donor"
    assert target.checkpoint.path == "/tmp/donor-checkpoint"
    _, unpatched = replay(PopulationBasedTraining._exploit)  # Tune's own exploit: the stale STOP
    assert unpatched == {"target": "STOP"}
