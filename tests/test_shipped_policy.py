"""The policy that ships (distlmk/policy/shipped_policy) is the one its provenance names, loads in
`distlmk search` (frozen) and has the observation and action spaces of today's protocol."""

import json

import yaml

from distlmk.cli import main
from distlmk.config import PolicyConfig, SearchConfig, from_dict, to_dict
from distlmk.policy.ship import SHIPPED, digest, provenance, shipped_checkpoint


def test_shipped_policy_is_the_one_its_provenance_names():
    p = provenance()
    assert digest(shipped_checkpoint()) == p["sha256"]  # a changed or swapped file fails here
    assert p["config"]["name"] and p["learning_curve"] and p["heldout"]["draws"]
    assert len(p["commit"]) == 40  # the commit the comparison ran at


def test_shipped_policy_acts_on_todays_protocol():
    import numpy as np

    from distlmk.policy.core import PolicyCore
    from distlmk.protocol import OBS_DIM, StepRequest

    core = PolicyCore(PolicyConfig(checkpoint=str(shipped_checkpoint()), freeze=True, explore=False))
    first = [w for w in core.weights().values() if w.ndim == 2 and OBS_DIM in w.shape]
    assert first, f"no layer reads {OBS_DIM} observation features"
    rows = np.arange(8)  # 7 landmarks and the trial row: any landmark count
    req = StepRequest("t", rows, np.zeros((8, OBS_DIM), np.float32), None, np.zeros(8, bool))
    (actions,) = core.act([req])
    assert actions.shape == (8, 2) and (actions >= 0).all()


def test_search_starts_rl_from_the_shipped_policy_unless_told_otherwise():
    """The default of `distlmk search`: rl trials start from the shipped policy unless the config
    names a checkpoint or a warm start (or --fresh-policy says so)."""
    from distlmk.policy.ship import starts_from_shipped

    def cfg(**policy):
        return from_dict(SearchConfig, {"methods": ["fixed", "rl"], "policy": policy}, "test")

    assert starts_from_shipped(cfg())
    assert not starts_from_shipped(cfg(checkpoint="elsewhere"))
    assert not starts_from_shipped(cfg(pretrain_rounds=3))
    assert not starts_from_shipped(from_dict(SearchConfig, {"methods": ["fixed", "landmark_pbt"]}, "test"))


def test_fresh_and_a_checkpoint_exclude_each_other(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"methods": ["rl"]}))
    assert main(["search", "--config", str(path), "--fresh-policy", "--policy-checkpoint", SHIPPED]) == 2
    assert "--fresh-policy and --policy-checkpoint" in capsys.readouterr().err


def test_search_runs_the_shipped_policy_frozen_by_default(ray_session, tmp_path):
    cfg = from_dict(SearchConfig, {
        "name": "ship", "simulation": {"enabled": True}, "seeds": [0], "methods": ["rl"], "rl_trials_per_seed": 2,
        "experiment": {"data": {"num_landmarks": 7}, "train": {"epochs": 4}}, "resources": {"cpu": 0.5},
    }, "test")
    path = tmp_path / "ship.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--freeze-policy", "--quiet"]) == 0
    stats = json.loads((tmp_path / "ship" / "policy_stats.json").read_text())
    assert stats["restored_from"] == str(shipped_checkpoint().resolve())
    assert stats["frozen"] and stats["updates_this_run"] == 0 and stats["decisions"] > 0
