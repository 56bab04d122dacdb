"""`distlmk ablate` end to end on a tiny scaling ablation, then `distlmk analyze` on its folder."""

import pandas as pd
import yaml

from distlmk.cli import main


def test_ablate_then_analyze(ray_session, tmp_path, capsys):
    cfg = {
        "name": "abl", "population_sizes": [2, 4], "cpu_per_trial": [0.5], "max_trial_processes": 2,
        "target_mre_mm": 50.0,
        "base": {"simulation": {"enabled": True}, "methods": ["rl"], "seeds": [0], "max_failures": 0,
                 "experiment": {"data": {"num_landmarks": 4}, "train": {"epochs": 3},
                                "sigma": {"rl": {"min_progress_to_stop": 1.1}}},  # no early stops
                 "policy": {"train_batch_rows": 16, "minibatch_size": 8, "num_epochs": 1}},
    }
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["ablate", "--config", str(path), "--out", str(tmp_path)]) == 0
    root = tmp_path / "abl"
    table = pd.read_parquet(root / "scaling.parquet")
    assert list(table["trials"]) == [2, 4] and list(table["pack"]) == [1, 2] and list(table["processes"]) == [2, 2]
    # 4 simulated trials packed 2 per process: 4 x 3 trial-epochs, every one of them measured
    assert list(table["trial_epochs"]) == [6, 12]
    assert (table["policy_requests"] > 0).all() and (table["time_to_target_s"] >= 0).all()
    assert (root / "scaling.png").stat().st_size > 0 and "| trials |" in (root / "scaling.md").read_text()
    assert "[ablation] 4 trials (2 processes x 2)" in capsys.readouterr().out
    assert main(["analyze", str(root)]) == 0
    report = (root / "analysis" / "report.md").read_text()
    assert "# Scaling ablation: abl" in report and "| trials |" in report
