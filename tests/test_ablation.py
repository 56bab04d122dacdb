"""`distlmk ablate` end to end on a tiny scaling ablation, then `distlmk analyze` on its folder."""

import json

import pandas as pd
import pytest
import yaml

from distlmk.cli import main

# the simulated validation MRE (4 landmarks, seed 0) is 7.8-7.9 mm after epoch 1 and 6.6-7.0 mm after
# epoch 2: the target is reached, but not at the first epoch. Epochs last 1 s, so that Tune's
# whole-second `timestamp` tells them apart.
TARGET_MM = 7.4


def first_time_below(exp, target_mm: float) -> float:
    """From the records: seconds from the population's start until its best validation MRE so far
    first fell to the target."""
    rec = pd.read_parquet(exp / "records.parquet").sort_values(["timestamp", "iteration"])
    best = rec["val/mre_mm"].cummin()
    assert (best <= target_mm).any(), f"target {target_mm} mm never reached (best {best.min():.2f} mm)"
    first = rec[best <= target_mm].iloc[0]
    assert first["iteration"] > 1 and (rec.loc[rec["iteration"] == 1, "val/mre_mm"] > target_mm).all(), \
        "the target is reached at the first epoch: it tells nothing"
    started = json.loads((exp / "run_info.json").read_text())["started_at"]
    assert first["timestamp"] > rec.loc[rec["iteration"] == 1, "timestamp"].min()
    return float(first["timestamp"] - started)


def test_ablate_then_analyze(ray_session, tmp_path, capsys):
    cfg = {
        "name": "abl", "population_sizes": [2, 4], "cpu_per_trial": [0.5], "max_trial_processes": 2,
        "target_mre_mm": TARGET_MM,
        "base": {"simulation": {"enabled": True, "epoch_seconds": 1.0}, "methods": ["rl"], "seeds": [0], "max_failures": 0,
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
    assert (table["policy_requests"] > 0).all()
    runs = sorted(d for d in root.iterdir() if (d / "records.parquet").is_file())
    assert [d.name for d in runs] == ["n2_cpu0.5", "n4_cpu0.5"]
    for (_, row), exp in zip(table.iterrows(), runs, strict=True):
        assert row["time_to_target_s"] == pytest.approx(first_time_below(exp, TARGET_MM), abs=1e-6), exp.name
    assert (root / "scaling.png").stat().st_size > 0 and "| trials |" in (root / "scaling.md").read_text()
    assert "[ablation] 4 trials (2 processes x 2)" in capsys.readouterr().out
    assert main(["analyze", str(root)]) == 0
    report = (root / "analysis" / "report.md").read_text()
    assert "# Scaling ablation: abl" in report and "| trials |" in report
