"""PBT with rl: an exploited trial keeps its own identity (method, variant, seed: the grid point
it was launched as) and trial id; it continues from the donor's checkpoint with a mutated lr,
and its records name the donor (pbt/donor, pbt/donor_index, pbt/exploits)."""

import re

import pandas as pd
from fault_checks import trial_dirs

from distlmk.cli import search
from distlmk.config import SearchConfig, from_dict


def test_exploited_trials_keep_their_identity_and_name_the_donor(ray_session, tmp_path):
    cfg = from_dict(SearchConfig, {
        "name": "pbtid", "simulation": {"enabled": True, "epoch_seconds": 0.1}, "methods": ["rl"],
        "seeds": [0, 1], "rl_trials_per_seed": 2, "resources": {"cpu": 0.5},
        "scheduler": {"name": "pbt", "perturbation_interval": 2},
        "experiment": {"data": {"num_landmarks": 4}, "train": {"epochs": 8},
                       "sigma": {"rl": {"min_progress_to_stop": 1.1}}},
        "policy": {"train_batch_rows": 64, "minibatch_size": 32, "num_epochs": 1},
    }, "test")
    exp = search(cfg, str(tmp_path)).exp_dir
    rec = pd.read_parquet(exp / "records.parquet").sort_values("iteration")
    assert list(exp.glob("pbt_policy_*.txt")), "PBT never exploited"
    # identity: constant per trial id, and the launched grid (2 seeds x 2 replicas) is intact
    ident = rec.groupby("trial_id")[["method", "variant", "seed"]].nunique()
    assert (ident == 1).all().all(), ident
    assert sorted(rec.groupby("trial_id")["seed"].first()) == [0, 0, 1, 1]
    # lineage: exploited trials name their donor, another trial of this experiment
    assert "pbt/donor" in rec, "records do not carry the PBT lineage"
    exploited = rec[rec["pbt/donor"].notna()]
    assert len(exploited) > 0
    assert set(exploited["pbt/donor"]) <= set(rec["trial_id"])
    assert (exploited["pbt/donor"] != exploited["trial_id"]).all()
    # independent source of the launched identity: Tune names a trial's folder once, at creation
    for tid, d in trial_dirs(exp).items():
        launched_seed = int(re.search(r"seed_(\d+)", d.name).group(1))
        assert set(rec.loc[rec["trial_id"] == tid, "seed"]) == {launched_seed}, (tid, d.name)
