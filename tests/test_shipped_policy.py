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


def test_search_runs_the_shipped_policy_frozen(ray_session, tmp_path):
    cfg = from_dict(SearchConfig, {
        "name": "ship", "simulation": {"enabled": True}, "seeds": [0], "methods": ["rl"], "rl_trials_per_seed": 2,
        "experiment": {"data": {"num_landmarks": 7}, "train": {"epochs": 4}}, "resources": {"cpu": 0.5},
    }, "test")
    path = tmp_path / "ship.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--policy-checkpoint", SHIPPED,
                 "--freeze-policy", "--quiet"]) == 0
    stats = json.loads((tmp_path / "ship" / "policy_stats.json").read_text())
    assert stats["restored_from"] == str(shipped_checkpoint().resolve())
    assert stats["frozen"] and stats["updates_this_run"] == 0 and stats["decisions"] > 0
