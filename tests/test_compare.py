"""The honest comparison: deltas and CIs on known values, choices that never read test,
and a small real-network `distlmk compare` end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fault_checks import assert_pbt_sigma_follows_config

from distlmk import schema as S
from distlmk.analysis.comparison import paired_delta, per_image_errors
from distlmk.population.selection import best_by_val, per_landmark_choice, validation_view


def test_paired_delta_known_values_and_ci():
    rng = np.random.default_rng(0)
    base = {s: rng.uniform(1, 2, 50) for s in range(3)}
    better = {s: e - 0.1 for s, e in base.items()}  # exactly 0.1 mm better on every image
    d = paired_delta(better, base, reps=500)
    assert d["delta_mm"] == pytest.approx(-0.1) and d["ci95"] == pytest.approx([-0.1, -0.1])
    noisy = {s: e + rng.normal(0, 0.3, 50) for s, e in base.items()}  # no true difference
    d = paired_delta(noisy, base, reps=2000)
    assert d["ci95"][0] < d["delta_mm"] < d["ci95"][1] and d["ci95"][0] < 0 < d["ci95"][1]
    shifted = {s: e + 0.5 + rng.normal(0, 0.3, 50) for s, e in base.items()}
    d = paired_delta(shifted, base, reps=2000)
    assert d["ci95"][0] > 0.3 and d["delta_pct"] > 0
    with pytest.raises(ValueError, match="same held-out seeds"):
        paired_delta({7: np.ones(3)}, {8: np.ones(3)})


def _summary(val_by_variant: dict, test_by_variant: dict) -> pd.DataFrame:
    rows = []
    for v, per_seed in val_by_variant.items():
        for seed, val_pl in per_seed.items():
            rows.append({S.VARIANT: v, S.METHOD: "fixed", S.SEED: seed, S.VAL_MRE: float(np.mean(val_pl)),
                         S.VAL_PER_LANDMARK: list(val_pl), S.COST_TRIAL_EPOCHS: 10,
                         S.test_key("test", "mre_mm"): test_by_variant[v],
                         S.test_key("test", "errors_mm"): [[test_by_variant[v]] * len(val_pl)] * 4})
    return pd.DataFrame(rows)


def test_choices_use_validation_only():
    val = {"fixed σ=1": {0: [1.0, 3.0], 1: [1.2, 3.2]}, "fixed σ=4": {0: [2.0, 2.0], 1: [2.1, 2.1]}}
    s = _summary(val, {"fixed σ=1": 0.1, "fixed σ=4": 9.0})
    assert not any(c.startswith("test/") for c in validation_view(s).columns)
    assert best_by_val(s) == "fixed σ=4"  # mean val 2.05 vs 2.1
    sig, picks = per_landmark_choice(s, {"fixed σ=1": 1.0, "fixed σ=4": 4.0})
    assert sig == [1.0, 4.0] and picks == ["fixed σ=1", "fixed σ=4"]
    flipped = _summary(val, {"fixed σ=1": 9.0, "fixed σ=4": 0.1})  # test results swapped: same choices
    assert best_by_val(flipped) == best_by_val(s)
    assert per_landmark_choice(flipped, {"fixed σ=1": 1.0, "fixed σ=4": 4.0})[0] == sig


def test_pbt_member_for_a_seed_is_chosen_on_validation():
    s = pd.DataFrame([
        {S.VARIANT: "pbt", S.SEED: 5, S.VAL_MRE: 2.0, S.test_key("test", "errors_mm"): [[1.0, 1.0]]},
        {S.VARIANT: "pbt", S.SEED: 5, S.VAL_MRE: 1.0, S.test_key("test", "errors_mm"): [[3.0, 3.0]]},
    ])
    np.testing.assert_allclose(per_image_errors(s, "pbt", "test")[5], [3.0])  # lower val wins, whatever its test


@pytest.mark.slow
def test_small_real_network_compare_end_to_end(ray_session, cache_dir, tmp_path):
    from distlmk.cli import main

    cfg = {
        "name": "smoke", "grid_sigmas": [1.5, 3.0], "schedules": [{"start": 3.0, "end": 1.5, "shape": "linear"}],
        "train_seeds": [0], "heldout_seeds": [5, 6], "generations": 2, "rl_replicas": 1,
        "cold_start_ablation": True, "pbt_population": 2, "pbt_perturbation_interval": 2,
        "baselines": ["learned", "pbt"], "bootstrap_reps": 200,
        "base": {
            "resources": {"cpu": 1}, "keep_checkpoints": 2,
            "experiment": {
                "data": {"format": "synthetic", "input_size": [48, 40], "num_train": 12, "num_val": 6, "num_test": 6,
                         "synth_size": [96, 80], "root": str(cache_dir), "synth_spacing_mm": 0.5,
                         "synth_noise_scale": 2.0, "synth_eval_truth": True},
                "model": {"base_channels": 4, "depth": 2},
                "train": {"epochs": 3, "batch_size": 6, "lr": 0.003},
                "sigma": {"init": 2.0, "min": 1.0, "max": 6.0,
                          "rl": {"decision_interval": 1, "min_progress_to_stop": 0.5}},
            },
            "policy": {"train_batch_rows": 16, "minibatch_size": 16, "num_epochs": 1, "pretrain_rounds": 1,
                       "pretrain_trials": 4, "pretrain_epochs": 4},
        },
    }
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    assert main(["compare", "--config", str(path), "--out", str(tmp_path / "out")]) == 0
    root = tmp_path / "out" / "smoke"
    c = json.loads((root / "comparison.json").read_text())
    assert c["heldout_seeds"] == [5, 6]
    assert c["methods"][c["best_fixed_by_val"]]["role"] == "best_fixed_by_val"  # listed under its own name
    for v in (c["best_fixed_by_val"], "per_landmark_static", "schedule", "learned", "rl", "rl_stop", "rl_cold", "pbt"):
        m = c["methods"][v]
        assert len(m["test_mre_mm"]) == 2 and m["mean"] == pytest.approx(np.mean(m["test_mre_mm"]))
        assert m["trial_epochs"] >= m["heldout_trial_epochs"] > 0
    assert c["methods"]["pbt"]["heldout_trial_epochs"] == 2 * 2 * 3  # 2 members x 2 seeds x 3 epochs
    for seed in (5, 6):  # PBT really exploited: once per population, at epoch 2 (Tune's own log)
        assert len((root / f"pbt_s{seed}" / "pbt_global.txt").read_text().splitlines()) == 1
        assert_pbt_sigma_follows_config(root / f"pbt_s{seed}", base=c["best_fixed_sigma"], lo=1.0, hi=6.0)
    assert c["best_fixed_by_val"] in ("fixed σ=1.5", "fixed σ=3")
    assert c["headroom"]["strategy"] in ("per_landmark_static", "schedule")
    assert set(c["rl_vs"]) == {"best_fixed_by_val", "per_landmark_static", "schedule", "learned", "pbt"}
    for d in c["rl_vs"].values():
        assert d["ci95"][0] <= d["delta_mm"] <= d["ci95"][1]
    assert [p["generation"] for p in c["learning_curve"]] == [1, 2]
    assert c["learning_curve"][1]["policy_updates"] > c["learning_curve"][0]["policy_updates"] >= 1  # cumulative
    # training stages never evaluated the test split; held-out ones did
    grid = pd.read_parquet(root / "grid" / "records.parquet")
    assert not any(col.startswith("test/") for col in grid.columns)
    held = pd.read_parquet(root / "heldout" / "records.parquet")
    assert held["test/test/mre_mm"].notna().sum() == held["trial_id"].nunique()
    # the frozen policy did not learn during the held-out evaluation
    stats = json.loads((root / "heldout" / "policy_stats.json").read_text())
    assert stats["frozen"] and stats["updates_this_run"] == 0 and stats["decisions"] > 0
    assert stats["updates"] == c["learning_curve"][-1]["policy_updates"]
    assert stats["restored_from"] == str(root / "gen2" / "policy" / "final")
    for f in ("comparison.md", "learning_curve.png", "heldout_deltas.png", "cost.png", "rl_sigma.png",
              "ced_test.png", "overlays_test.png", "per_landmark_test.csv"):
        assert (root / f).is_file(), f
