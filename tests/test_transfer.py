"""A policy learned with 19 landmarks acts, frozen, on a population with another landmark count."""

import json

import numpy as np
import pandas as pd
import yaml

from distlmk.cli import main
from distlmk.config import SearchConfig, from_dict, to_dict
from distlmk.policy.core import PolicyCore


def test_frozen_policy_transfers_to_other_landmark_count(ray_session, tmp_path):
    base = {
        "simulation": {"enabled": True}, "seeds": [0], "methods": ["rl"], "rl_trials_per_seed": 2,
        "experiment": {"data": {"num_landmarks": 19}, "train": {"epochs": 4}}, "resources": {"cpu": 0.5},
        "policy": {"train_batch_rows": 64, "minibatch_size": 32, "num_epochs": 2},
    }
    src = from_dict(SearchConfig, {**base, "name": "src19"}, "test")
    (tmp_path / "src.yaml").write_text(yaml.safe_dump(to_dict(src)))
    assert main(["search", "--config", str(tmp_path / "src.yaml"), "--out", str(tmp_path)]) == 0
    learned = tmp_path / "src19" / "policy" / "final"
    assert json.loads((tmp_path / "src19" / "policy_stats.json").read_text())["updates"] >= 1

    dst = from_dict(SearchConfig, {**base, "name": "dst7"}, "test")
    dst.experiment.data.num_landmarks = 7
    (tmp_path / "dst.yaml").write_text(yaml.safe_dump(to_dict(dst)))
    assert main(["search", "--config", str(tmp_path / "dst.yaml"), "--out", str(tmp_path),
                 "--policy-checkpoint", str(learned), "--freeze-policy"]) == 0
    exp = tmp_path / "dst7"
    stats = json.loads((exp / "policy_stats.json").read_text())
    assert stats["frozen"] and stats["updates_this_run"] == 0 and stats["decisions"] > 0
    assert stats["restored_from"] == str(learned)
    report = (exp / "report.md").read_text()
    assert str(learned) in report and "| frozen | True |" in report
    rec = pd.read_parquet(exp / "records.parquet")
    assert {len(s) for s in rec["sigma/used"]} == {7}
    # the served weights are exactly the learned ones
    from distlmk.config import PolicyConfig

    a = PolicyCore(PolicyConfig(checkpoint=str(learned))).weights()
    b = PolicyCore(PolicyConfig(checkpoint=str(exp / "policy" / "final"))).weights()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
