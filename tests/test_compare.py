"""The arena: unseen draws, choices that never read test, compute that counts everything, a journal of
test reads, and a small real-network `distlmk compare` end to end."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from distlmk import schema as S
from distlmk.analysis.comparison import CompareRun, build_comparison, write_comparison
from distlmk.compare import plan_stages, random_sigmas
from distlmk.config import CompareConfig, ConfigError, load_yaml
from distlmk.control.landmark_pbt import latin_sigmas
from distlmk.population.selection import best_by_val, per_landmark_choice, validation_view
from distlmk.stages import Role, StageKind, StageSpec

BENCHMARK = Path(__file__).parents[1] / "tune_configs" / "synthetic_benchmark.yaml"


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


def test_cold_start_designs_cover_the_range():
    s = latin_sigmas(4, 19, 1.0, 6.0, seed=[100, 2])
    strata = np.floor((np.log(s) - np.log(1.0)) / (np.log(6.0) - np.log(1.0)) * 4).astype(int)
    for k in range(19):  # every landmark: each member in a different quarter of log sigma
        assert sorted(strata[:, k]) == [0, 1, 2, 3]
    assert not all((strata[:, k] == strata[:, 0]).all() for k in range(19))  # shuffled per landmark
    r = random_sigmas(4, 19, 1.0, 6.0, seed=[100, 1])
    assert r.shape == (4, 19) and r.min() >= 1.0 and r.max() <= 6.0


def test_generation_size_sets_the_generations_members_only():
    """More members per generation give the learner more real transitions; the held-out populations
    keep population_size members, so the arena stays at equal N."""
    cfg = load_yaml(BENCHMARK, CompareConfig)
    cfg.generation_size = 9
    planned = plan_stages(cfg)
    gens = [sc for sc in planned if sc.name.startswith("gen")]
    assert len(gens) == cfg.generations * len(cfg.train_draws)
    assert all(len(sc.variants) == 9 and all(v.method == "rl" for v in sc.variants) for sc in gens)
    rl = [sc for sc in planned if sc.name.startswith("rl_d")]
    assert rl and all(len(sc.variants) == cfg.population_size for sc in rl)
    cfg.generation_size = -1
    with pytest.raises(ConfigError, match="generation_size"):
        plan_stages(cfg)


def _image_hashes(search_cfg) -> set[str]:
    from distlmk.data import load_dataset
    from distlmk.population.search import data_draws

    return {hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()
            for d in data_draws(search_cfg) for img in load_dataset(d).images}


def test_heldout_draws_share_no_image_with_training_draws(cache_dir):
    """The shipped benchmark's plan, at fewer images per draw (a draw's images depend on its seed and
    index only): every image any held-out stage reads differs from every image the policy trained on."""
    cfg = load_yaml(BENCHMARK, CompareConfig)
    d = cfg.base.experiment.data
    d.num_train, d.num_val, d.num_test, d.root = 6, 4, 4, str(cache_dir)
    planned = plan_stages(cfg)
    train = [sc for sc in planned if sc.name.startswith("gen")]
    held = [sc for sc in planned if not sc.name.startswith("gen")]
    assert {s for sc in train for s in sc.seeds} == set(cfg.train_draws)
    assert {s for sc in held for s in sc.seeds} == set(cfg.heldout_draws)
    assert all(sc.seed_varies == "both" for sc in planned)
    seen = set().union(*(_image_hashes(sc) for sc in train))
    unseen = set().union(*(_image_hashes(sc) for sc in held))
    assert len(seen) == 14 * len(cfg.train_draws) and len(unseen) == 14 * len(cfg.heldout_draws)  # no repeats
    assert not seen & unseen
    for sc in held:  # Tune's PBT and PB2 on sigma, every perturbation_interval epochs, from no grid
        if sc.name.startswith(("pbt_d", "pb2_d")):
            assert (sc.scheduler.name, sc.scheduler.pbt_mutate) == (sc.name[:3], "sigma")
            assert sc.scheduler.perturbation_interval == cfg.perturbation_interval
            assert [v.sigma.init for v in sc.variants] == [pytest.approx((min(cfg.grid_sigmas) * max(cfg.grid_sigmas)) ** 0.5)]
            assert sc.variants[0].replicas == cfg.population_size
    assert {sc.name.rsplit("_d", 1)[0] for sc in held if sc.name.endswith(tuple(f"_d{d}" for d in cfg.heldout_draws))} == {
        "pbt", "pb2", "landmark_pbt", "rl"}
    # the planner really varies the data: a config that varied only the network would reuse draw 0's images
    same = [sc for sc in held if sc.name == "grid"][0]
    same.seed_varies = "network"
    assert len(_image_hashes(same)) == 14


def _member(variant, draw, val, test_img, epochs=4, method="fixed"):
    return {S.VARIANT: variant, S.METHOD: method, S.SEED: draw, S.VAL_MRE: val, "epochs": epochs,
            S.COST_TRIAL_EPOCHS: epochs, S.VAL_PER_LANDMARK: [val, val],
            S.test_key("test", "errors_mm"): [[e, e] for e in test_img], "status": "TERMINATED"}


def _handmade_run(tmp_path: Path, started: float = 1.0) -> CompareRun:
    """Two held-out draws, three test images each; known picks and known compute."""
    draws = (100, 101)
    grid = pd.DataFrame([_member("fixed σ=1", d, 1.0, [1.0, 1.0, 1.0]) for d in draws]
                        + [_member("fixed σ=4", d, 2.0, [0.5, 0.5, 0.5]) for d in draws]
                        + [_member("random", d, v, [t] * 3) for d in draws for v, t in ((1.5, 3.0), (0.9, 2.0))])
    retrain = pd.DataFrame([_member("per_landmark_static", d, 0.8, [0.8, 0.9, 1.0]) for d in draws])
    rl = {d: pd.DataFrame([_member("rl", d, v, [t] * 3, method="rl") for v, t in ((1.2, 0.1), (0.7, 0.6))])
          for d in draws}
    gen = pd.DataFrame([_member("rl", 0, 1.1, [0.0] * 3, epochs=4, method="rl")] * 2)
    stages = [StageSpec("gen1_d0", StageKind.GENERATION, (0,), (Role.RL,), 1),
              StageSpec("grid", StageKind.GRID, draws, (Role.BEST_FIXED, Role.RANDOM)),
              StageSpec("retrain", StageKind.RETRAIN, draws, (Role.PER_LANDMARK_STATIC,))]
    stages += [StageSpec(f"rl_d{d}", StageKind.POPULATION, (d,), (Role.RL,)) for d in draws]
    summaries = {"gen1_d0": gen.drop(columns=[S.test_key("test", "errors_mm")]), "grid": grid, "retrain": retrain,
                 **{f"rl_d{d}": rl[d] for d in draws}}
    for st in stages:
        (tmp_path / st.name).mkdir(parents=True, exist_ok=True)
        (tmp_path / st.name / "run_info.json").write_text(json.dumps({"started_at": started, "elapsed_s": 1.0, "num_trials": 2, "num_errors": 0}))
    choices = {d: {"best_fixed": "fixed σ=1", "best_fixed_sigma": 1.0, "per_landmark_sigma": [1.0, 4.0],
                   "per_landmark_pick": ["fixed σ=1", "fixed σ=4"]} for d in draws}
    cfg = {"name": "t", "train_draws": [0], "population_size": 2, "bootstrap_reps": 200}
    return CompareRun(tmp_path, cfg, choices, "policy", stages, summaries, {s.name: {} for s in stages}, 1.0, 5.0)


def test_roles_pick_on_validation_and_count_all_compute(tmp_path):
    c = build_comparison(_handmade_run(tmp_path), reps=200)
    m = c["methods"]
    # best fixed by validation is σ=1 (val 1.0 < 2.0), although σ=4 is better on test
    assert m["best_fixed_by_val"]["test_mre_mm"] == [1.0, 1.0]
    # populations: the member with the lower validation MRE stands, whatever its test
    assert m["random"]["test_mre_mm"] == [2.0, 2.0] and m["rl"]["test_mre_mm"] == [0.6, 0.6]
    # compute: grid members (2 x 4) behind best fixed; + the retrain for per-landmark; rl: its 2 members
    # plus the policy's generation (2 trials x 4 epochs), counted in full on each draw
    assert m["best_fixed_by_val"]["trial_epochs_total"] == 8
    assert m["per_landmark_static"]["trial_epochs_total"] == 12
    assert m["random"]["trial_epochs_total"] == 8
    assert m["rl"]["trial_epochs_total"] == 8 + 8
    d = c["rl_vs"]["best_fixed_by_val"]
    assert d["delta_mm"] == pytest.approx(-0.4) and d["ci95"] == pytest.approx([-0.4, -0.4])
    assert d["ci95_t"] == pytest.approx([-0.4, -0.4]) and d["holds"] and d["sign"] == "better"
    assert set(c["rl_vs"]) == {"best_fixed_by_val", "per_landmark_static", "random"}
    assert c["headroom"]["delta_mm"] == pytest.approx(-0.1) and c["headroom"]["met"]
    assert c["heldout_draws"] == [100, 101] and c["pick_agreement"]["mean"] == 1.0


def test_every_test_read_is_journalled_and_a_rerun_reported(tmp_path):
    run = _handmade_run(tmp_path)
    write_comparison(run)
    reads = [json.loads(x) for x in (tmp_path / "test_reads.jsonl").read_text().splitlines()]
    assert sorted(r["stage"] for r in reads) == ["grid", "retrain", "rl_d100", "rl_d101"]  # no generation stage
    assert all(r["commit"] and r["time"] > 0 for r in reads)
    md = (tmp_path / "comparison.md").read_text()
    assert "rerun after" not in md
    # the rl stage of draw 100 runs again after its test split was read: both figures are reported
    (tmp_path / "rl_d100" / "run_info.json").write_text(json.dumps({"started_at": 2.0, "elapsed_s": 1.0, "num_trials": 2, "num_errors": 0}))
    run.summaries["rl_d100"][S.test_key("test", "errors_mm")] = pd.Series([[[0.3, 0.3]] * 3] * 2)
    write_comparison(run)
    c = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["stage"] for r in c["reruns_after_test_read"]] == ["rl_d100"]
    r = c["reruns_after_test_read"][0]
    assert r["figures"]["rl"] == pytest.approx(0.6) and r["now"]["rl"] == pytest.approx(0.45)
    assert "Stages rerun after their test split was read" in (tmp_path / "comparison.md").read_text()
    assert len((tmp_path / "test_reads.jsonl").read_text().splitlines()) == 8


@pytest.mark.slow
def test_small_real_network_compare_end_to_end(ray_session, cache_dir, tmp_path):
    from distlmk.cli import main

    cfg = {
        "name": "smoke", "grid_sigmas": [1.5, 3.0], "train_draws": [0], "heldout_draws": [5], "generations": 1,
        "population_size": 2, "perturbation_interval": 2,
        "baselines": ["learned", "random", "landmark_pbt"],  # PBT and PB2 on sigma run in test_plan
        "bootstrap_reps": 200,
        "base": {
            "resources": {"cpu": 1}, "keep_checkpoints": 2,
            "experiment": {
                "data": {"format": "synthetic", "input_size": [48, 40], "num_train": 12, "num_val": 6, "num_test": 6,
                         "synth_size": [96, 80], "root": str(cache_dir), "synth_spacing_mm": 0.5,
                         "synth_noise_scale": 2.0, "synth_eval_truth": True},
                "model": {"base_channels": 4, "depth": 2},
                "train": {"epochs": 3, "batch_size": 6, "lr": 0.003},
                "sigma": {"init": 2.0, "min": 1.0, "max": 6.0, "rl": {"decision_interval": 1}},
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
    assert c["heldout_draws"] == [5]  # one draw keeps it short; the intervals over draws: test_stats
    for v in ("best_fixed_by_val", "per_landmark_static", "learned", "random", "landmark_pbt", "rl"):
        m = c["methods"][v]
        assert len(m["test_mre_mm"]) == 1 and m["mean"] == pytest.approx(m["test_mre_mm"][0])
        assert m["trial_epochs_total"] > 0
    assert c["methods"]["landmark_pbt"]["trial_epochs_total"] == 2 * 3  # 2 members x 3 epochs per draw
    assert c["methods"]["rl"]["trial_epochs_total"] == 2 * 3 + 2 * 3  # + the generation, in full
    assert set(c["rl_vs"]) == {"best_fixed_by_val", "per_landmark_static", "learned", "random", "landmark_pbt"}
    assert set(c["landmark_pbt_vs"]) == set(c["rl_vs"]) - {"landmark_pbt"} | {"rl"}
    for d in c["rl_vs"].values():
        assert d["ci95"][0] <= d["delta_mm"] <= d["ci95"][1] and len(d["ci95_t"]) == 2
    assert [p["generation"] for p in c["learning_curve"]] == [1]
    assert c["learning_curve"][0]["policy_updates"] >= 1
    gen = pd.read_parquet(root / "gen1_d0" / "records.parquet")  # training stages never evaluate test
    assert not any(col.startswith("test/") for col in gen.columns)
    stats = json.loads((root / "rl_d5" / "policy_stats.json").read_text())
    assert stats["frozen"] and stats["updates_this_run"] == 0 and stats["decisions"] > 0
    assert stats["restored_from"] == str(root / "gen1_d0" / "policy" / "final")
    # one read per held-out stage: grid, retrain, landmark_pbt and rl on the draw
    assert len((root / "test_reads.jsonl").read_text().splitlines()) == 4
    for f in ("comparison.md", "learning_curve.png", "heldout_deltas.png", "cost.png", "stages.json"):
        assert (root / f).is_file(), f
    # --resume reuses every finished stage; a lost one runs again and is reported beside its earlier figure
    shutil.rmtree(root / "retrain")
    assert main(["compare", "--config", str(path), "--out", str(tmp_path / "out"), "--resume"]) == 0
    again = json.loads((root / "comparison.json").read_text())
    assert [r["stage"] for r in again["reruns_after_test_read"]] == ["retrain"]
    for v, m in c["methods"].items():
        if v not in ("per_landmark_static", "learned"):  # reused, not retrained: the very same figures
            assert again["methods"][v]["test_mre_mm"] == m["test_mre_mm"], v
