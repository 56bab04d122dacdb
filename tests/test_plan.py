"""One plan per trial, made before Ray starts: typed variant overrides, config errors that exit 2
without starting Ray, Tune's mutations applied once (fresh start and restore alike), PBT/PB2 on
sigma sized by the loaded data, and a search whose trials all fail before their first result."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pandas as pd
import pytest
import yaml
from fault_checks import assert_pbt_sigma_follows_config

from distlmk import schema as S
from distlmk.cli import EXIT_BAD_INPUT, EXIT_TRIALS_FAILED, main
from distlmk.config import ConfigError, FaultConfig, SearchConfig, SigmaConfig, SigmaOverrides, from_dict, load_yaml
from distlmk.population import search as search_module
from distlmk.population import trainable
from distlmk.population.plan import TrialPlan, apply_mutations, plan_trials
from distlmk.population.spec import RunSpec
from distlmk.runner import search


def sim_cfg(name: str = "plan", **over) -> dict:
    cfg = {
        "name": name, "simulation": {"enabled": True}, "seeds": [0], "methods": ["fixed"], "fixed_sigmas": [2.0],
        "experiment": {"data": {"num_landmarks": 4}, "train": {"epochs": 3}}, "resources": {"cpu": 0.5},
    }
    cfg.update(over)
    return cfg


def write_yaml(path, cfg: dict):
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


@pytest.fixture
def no_ray_start(monkeypatch):
    """Fails the test if `distlmk search` gets as far as starting (or joining) Ray."""
    def refuse(*a, **k):
        raise AssertionError("Ray was started before the config error was reported")

    monkeypatch.setattr(search_module, "init_ray", refuse)


# --- typed variant overrides ------------------------------------------------------------------


def test_misspelt_variant_sigma_key_is_named_with_its_file(tmp_path):
    path = write_yaml(tmp_path / "v.yaml", sim_cfg(variants=[{"name": "v", "sigma": {"inti": 2.0}}]))
    with pytest.raises(ConfigError, match=r"v\.yaml: variants\[0\]\.sigma\.inti: unknown key"):
        load_yaml(path, SearchConfig)
    path = write_yaml(tmp_path / "r.yaml", sim_cfg(variants=[{"name": "v", "sigma": {"rl": {"step": 2.0}}}]))
    with pytest.raises(ConfigError, match=r"r\.yaml: variants\[0\]\.sigma\.rl\.step: unknown key"):
        load_yaml(path, SearchConfig)


def test_sigma_overrides_cover_every_sigma_key_but_method():
    from dataclasses import fields

    from distlmk.config import RLControlConfig, RLControlOverrides

    assert {f.name for f in fields(SigmaOverrides)} == {f.name for f in fields(SigmaConfig)} - {"method"}
    # sigma.rl.member is the plan's to set, per trial: no variant overrides it
    assert {f.name for f in fields(RLControlOverrides)} == {f.name for f in fields(RLControlConfig)} - {"member"}


def test_search_with_a_misspelt_variant_key_exits_2_before_ray(tmp_path, capsys, no_ray_start):
    path = write_yaml(tmp_path / "bad.yaml", sim_cfg(variants=[{"name": "v", "sigma": {"inti": 2.0}}]))
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "variants[0].sigma.inti" in err and "bad.yaml" in err
    assert not (tmp_path / "out").exists()


def test_wrong_per_landmark_length_in_a_variant_exits_2_before_ray(tmp_path, capsys, no_ray_start):
    path = write_yaml(tmp_path / "len.yaml", sim_cfg(variants=[{"name": "v", "sigma": {"per_landmark": [2, 2, 2]}}]))
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "variants[0].sigma.per_landmark: 3 values for 4 landmarks" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the plan ---------------------------------------------------------------------------------


def test_plan_carries_each_trials_whole_experiment():
    cfg = from_dict(SearchConfig, sim_cfg(
        seeds=[0, 1], methods=["fixed", "rl"], fixed_sigmas=[1.5, 2.5], rl_trials_per_seed=2,
        experiment={"data": {"num_landmarks": 3}, "sigma": {"init": 3.0, "rl": {"step_factor": 1.5}}},
        variants=[{"name": "pl", "method": "rl", "replicas": 1,
                   "sigma": {"per_landmark": [1.0, 2.0, 3.0], "rl": {"board": "pl"}}}]), "test")
    plans = plan_trials(cfg, 3)
    assert [p.index for p in plans] == list(range(2 * (2 + 2 + 1)))
    fixed = [p for p in plans if p.method == "fixed"]
    assert sorted({p.experiment.sigma.init for p in fixed}) == [1.5, 2.5]
    assert {p.variant for p in fixed} == {"fixed σ=1.5", "fixed σ=2.5"}
    pl = [p for p in plans if p.variant == "pl"]
    assert [p.seed for p in pl] == [0, 1] and all(p.experiment.train.seed == p.seed for p in plans)
    s = pl[0].experiment.sigma
    assert (s.method, s.init, s.per_landmark, s.rl.board, s.rl.step_factor) == (
        "rl", 3.0, [1.0, 2.0, 3.0], "pl", 1.5)  # overrides on top of the experiment's sigma
    assert s.rl.server_name == "distlmk_policy:plan"
    assert cfg.experiment.sigma.per_landmark == [] and cfg.experiment.sigma.method == "fixed"  # config untouched
    for p in plans:  # Tune's plain values, and back
        assert TrialPlan.from_config(p.as_config()) == p
    d = plans[0].as_config()
    del d["experiment"]["sigma"]["rl"]["board"]
    with pytest.raises(ValueError, match="experiment.sigma.rl.board: missing"):
        TrialPlan.from_config(d)


def test_board_members_key_their_draws_by_their_place_in_the_plan():
    """The board's draws (landmark_pbt's rule, rl's ADOPT donor) are keyed by the plan's index, which a
    rerun of the same config repeats (Tune's trial ids do not)."""
    cfg = from_dict(SearchConfig, sim_cfg(seeds=[0, 1], methods=["fixed", "landmark_pbt", "rl"], fixed_sigmas=[2.0],
                                          experiment={"data": {"num_landmarks": 3}}), "test")
    plans, again = plan_trials(cfg, 3), plan_trials(cfg, 3)
    members = [p.experiment.sigma.rl.member for p in plans if p.method in ("landmark_pbt", "rl")]
    assert members == [p.index for p in plans if p.method in ("landmark_pbt", "rl")]
    assert len(set(members)) == len(members) == 2 * (1 + cfg.rl_trials_per_seed)
    assert members == [p.experiment.sigma.rl.member for p in again if p.method in ("landmark_pbt", "rl")]
    assert all(p.experiment.sigma.rl.member is None for p in plans if p.method == "fixed")
    assert cfg.experiment.sigma.rl.member is None  # config untouched


def test_pbt_draws_follow_the_scheduler_seed(tmp_path):
    """`scheduler.seed` fixes Tune's PBT draws in the driver: the first sample of the space and the
    explore steps repeat for one seed and differ for another."""
    from ray.tune.schedulers.pbt import _explore
    from ray.tune.search.variant_generator import generate_variants

    def draws(seed: int) -> list:
        cfg = from_dict(SearchConfig, sim_cfg("pbt", seeds=[0], experiment={"data": {"num_landmarks": 3}},
                                              scheduler={"name": "pbt", "pbt_mutate": "sigma", "seed": seed}), "test")
        search_module.build_tuner(cfg, plan_trials(cfg, 3), lambda c: None, str(tmp_path), tmp_path,
                                  resume=False, quiet=True)  # builds the scheduler: seeds the driver's draws
        space = search_module.pbt_space(cfg, 3)
        first = [v for _, v in generate_variants(space)]  # as Tune's generator samples it, from NumPy's global
        explored = [_explore({k: 1.0 for k in space}, space, 0.25, (1.2, 0.8), None)[0] for _ in range(3)]
        return [first, explored]

    assert draws(3) == draws(3) != draws(4)


def test_pbt_and_pb2_reject_mixed_methods():
    for name in ("pbt", "pb2"):
        cfg = from_dict(SearchConfig, sim_cfg(methods=["fixed", "adaloss"], scheduler={"name": name}), "test")
        with pytest.raises(ConfigError, match=f"scheduler.name: {name}"):
            plan_trials(cfg, 4)


def test_apply_mutations_scales_the_plan_once_and_clips():
    cfg = from_dict(SearchConfig, sim_cfg(experiment={"sigma": {"init": 3.0, "min": 1.0, "max": 8.0}}), "test")
    plan = plan_trials(cfg, 3)[0]
    assert plan.experiment.sigma.init == 2.0  # fixed σ=2
    tune_cfg = {"sigma_scale": 1.5, "sigma_factor_0": 0.2, "sigma_factor_1": 1.0, "sigma_factor_2": 3.0, "lr": 1e-3}
    exp = apply_mutations(plan, tune_cfg)
    assert exp.sigma.per_landmark == pytest.approx([1.0, 3.0, 8.0]) and exp.train.lr == 1e-3
    assert plan.experiment.sigma.per_landmark == []  # the plan itself is never mutated
    with pytest.raises(KeyError):  # every landmark's factor is required
        apply_mutations(plan, {"sigma_scale": 1.0, "sigma_factor_0": 1.0})


def test_restored_pbt_trial_trains_with_its_sigma_scaled_exactly_once(tmp_path, monkeypatch):
    """The trainable's restore path (PBT exploit or retry), without Ray: the donor's checkpoint was
    written with another sigma; the restored trial must train with init x scale x factor (clipped)."""
    cfg = from_dict(SearchConfig, sim_cfg(fixed_sigmas=[3.0], experiment={"data": {"num_landmarks": 3}, "train": {"epochs": 4},
                                                      "sigma": {"init": 3.0, "min": 1.0, "max": 8.0}}), "test")
    plan = plan_trials(cfg, 3)[0]
    reports, kept = [], tmp_path / "ckpt"
    state = {"checkpoint": None}

    def report(metrics, checkpoint):
        reports.append(metrics)
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(checkpoint.path, kept)

    fake = types.SimpleNamespace(
        get_checkpoint=lambda: state["checkpoint"], report=report, Checkpoint=trainable.tune.Checkpoint,
        get_context=lambda: types.SimpleNamespace(get_trial_id=lambda: "t0", get_trial_dir=lambda: str(tmp_path)))
    monkeypatch.setattr(trainable, "tune", fake)
    monkeypatch.setattr(trainable, "_mark_restore", lambda *a: None)  # no Ray runtime context here
    donor = {"trial": plan.as_config(), "sigma_scale": 1.0, **{f"sigma_factor_{k}": 1.0 for k in range(3)}}
    run = RunSpec(gpu=0.0, simulation=cfg.simulation, faults=[FaultConfig(kind="raise", epoch=2, attempts=[0])])
    with pytest.raises(RuntimeError, match="injected failure after epoch 2"):
        trainable.train_trial(donor, run)
    assert [r[S.EPOCH] for r in reports] == [1, 2]
    np.testing.assert_allclose(reports[-1][S.SIGMA_USED], [3.0, 3.0, 3.0])

    mutated = {"trial": plan.as_config(), "sigma_scale": 1.5, "sigma_factor_0": 0.7, "sigma_factor_1": 1.0,
               "sigma_factor_2": 1.3, "pbt": {"donor": "t1", "donor_index": 1, "exploits": 1}}
    state["checkpoint"] = trainable.tune.Checkpoint.from_directory(str(kept))
    reports.clear()
    trainable.train_trial(mutated, run)  # attempt 1: the fault (attempt 0 only) does not fire
    assert [r[S.EPOCH] for r in reports] == [3, 4]
    once = np.clip(3.0 * 1.5 * np.array([0.7, 1.0, 1.3]), 1.0, 8.0)  # [3.15, 4.5, 5.85]; twice: [3.31, 6.75, 8]
    for r in reports:
        np.testing.assert_allclose(r[S.SIGMA_USED], once, rtol=1e-6)
        assert r["pbt/exploits"] == 1


# --- PBT / PB2 on sigma with Ray --------------------------------------------------------------


def test_pbt_on_sigma_sizes_its_space_from_a_7_landmark_folder_dataset(ray_session, tmp_path, cache_dir):
    from distlmk.data.folder import write_folder
    from distlmk.data.synthetic import synthetic_dataset

    data = write_folder(synthetic_dataset(10, 4, 2, num_landmarks=7, seed=3, size=(96, 80)), tmp_path / "data")
    cfg = from_dict(SearchConfig, {
        "name": "pbt7", "methods": ["fixed"], "fixed_sigmas": [2.0], "seeds": [0, 1],
        "experiment": {  # data.num_landmarks stays at its default (19): the folder's 7 must win
            "data": {"format": "folder", "root": str(data), "input_size": [48, 40], "val_fraction": 0.3,
                     "augment": {"enabled": False}},
            "model": {"base_channels": 4, "depth": 2},
            "train": {"epochs": 2, "batch_size": 8, "evaluate_test": False},
        },
        "scheduler": {"name": "pbt", "pbt_mutate": "sigma", "perturbation_interval": 1},
        "resources": {"cpu": 1},
    }, "test")
    exp = search(cfg, str(tmp_path / "out"), quiet=True).exp_dir
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 2 and set(summary["status"]) == {"completed"}
    rec = pd.read_parquet(exp / "records.parquet")
    assert {len(v) for v in rec[S.SIGMA_USED]} == {7}
    assert_pbt_sigma_follows_config(exp)  # including the exploit at epoch 1
    params = [json.loads(f.read_text()) for f in exp.glob("*/params.json")]
    assert len(params) == 2 and all(  # the space has one factor per landmark of the data, no more
        {k for k in p if k.startswith("sigma_factor_")} == {f"sigma_factor_{k}" for k in range(7)} for p in params)


def test_pb2_population_on_sigma_runs_and_records_its_configured_sigma(ray_session, tmp_path):
    cfg = from_dict(SearchConfig, sim_cfg(
        "pb2", seeds=[0, 1], experiment={"data": {"num_landmarks": 4}, "train": {"epochs": 4},
                                         "sigma": {"init": 3.0}},
        scheduler={"name": "pb2", "pbt_mutate": "sigma", "perturbation_interval": 2,
                   "sigma_scale_range": [0.5, 2.0], "sigma_factor_range": [0.7, 1.4]}), "test")
    scheduler = search_module.build_scheduler(cfg, 4)
    from ray.tune.schedulers.pb2 import PB2

    assert isinstance(scheduler, PB2) and set(scheduler._hyperparam_bounds) == {
        "sigma_scale", *(f"sigma_factor_{k}" for k in range(4))}
    exp = search(cfg, str(tmp_path), quiet=True).exp_dir
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 2 and set(summary["status"]) == {"completed"}
    assert_pbt_sigma_follows_config(exp)  # every epoch, before and after the exploit at epoch 2
    rec = pd.read_parquet(exp / "records.parquet")
    assert (rec.groupby(S.TRIAL_ID)[[S.SEED, S.VARIANT]].nunique() == 1).all().all()  # identity kept on exploit
    assert sorted(rec.groupby(S.TRIAL_ID)[S.SEED].first()) == [0, 1]
    exploited = rec[rec["pbt/donor"].notna()]
    assert len(exploited) and (exploited["pbt/donor"] != exploited[S.TRIAL_ID]).all()
    assert len((exp / "pbt_global.txt").read_text().splitlines()) == 1  # none at the last epoch (4)


# --- a search whose every trial fails before its first result -----------------------------------


def test_search_whose_trials_all_fail_before_a_result_reports_and_exits_3(ray_session, tmp_path, capsys):
    path = write_yaml(tmp_path / "fail.yaml", sim_cfg(
        "allfail", fixed_sigmas=[2.0, 3.0], max_failures=0, faults={"inject": [{"kind": "nan", "epoch": 1}]}))
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_TRIALS_FAILED
    err = capsys.readouterr().err
    assert "2 of 2 trials ended in error" in err and "Traceback" not in err.split("error: 2 of 2")[-1]
    exp = tmp_path / "out" / "allfail"
    report = (exp / "report.md").read_text()
    assert "## Failed trials" in report and report.count("NonFiniteLossError") + report.count("non-finite") >= 2
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 2 and set(summary["status"]) == {"error"}
    assert main(["analyze", str(exp)]) == 0  # and `distlmk analyze` reads such a folder too
    assert (exp / "analysis" / "report.md").read_text().count("- failed trial") == 2
