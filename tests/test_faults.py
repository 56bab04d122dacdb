"""Faults survived, nothing lost: killed trial processes, a killed policy actor, a killed
driver, a NaN trial, and bad input rejected before any compute."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from distlmk.cli import main
from distlmk.config import SearchConfig, from_dict, to_dict
from distlmk.population.search import policy_server_name, run_search


def sim_cfg(name, **over):
    cfg = {
        "name": name, "simulated": True, "seeds": [0], "methods": ["fixed", "rl"], "fixed_sigmas": [2.0],
        "rl_trials_per_seed": 2, "experiment": {"data": {"num_landmarks": 5}, "train": {"epochs": 6}},
        "resources": {"cpu": 0.5}, "max_failures": 2,
        "policy": {"train_batch_rows": 32, "minibatch_size": 16, "num_epochs": 1},
    }
    cfg.update(over)
    return from_dict(SearchConfig, cfg, "test")


def check_records_complete(exp: Path, epochs: int) -> pd.DataFrame:
    rec = pd.read_parquet(exp / "records.parquet")
    assert not rec.duplicated(["trial_id", "iteration"]).any()
    for tid, g in rec.groupby("trial_id"):
        assert sorted(g["iteration"]) == list(range(1, len(g) + 1)), f"gap in {tid}"
        assert g["epoch"].max() == epochs or g["rl/stopped"].any(), tid
    return rec


def test_killed_trial_processes_resume_from_checkpoints(ray_session, tmp_path):
    exp = run_search(sim_cfg("kill", faults=[{"kind": "kill", "epoch": 3}]), str(tmp_path), quiet=True)
    rec = check_records_complete(exp, 6)
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 3 and set(summary["status"]) <= {"completed", "stopped"}
    assert rec["trial_id"].nunique() == 3


def test_nan_trial_fails_with_reason_and_others_finish(ray_session, tmp_path):
    cfg = sim_cfg("nan", faults=[{"kind": "nan", "epoch": 2, "trials": [0]}], max_failures=1)
    exp = run_search(cfg, str(tmp_path), quiet=True)
    summary = pd.read_parquet(exp / "summary.parquet")
    bad = summary[summary["status"] == "error"]
    assert len(bad) == 1 and "non-finite" in bad["error"].iloc[0]
    assert (summary["status"] != "error").sum() == 2
    report = (exp / "report.md").read_text()
    assert "## Failed trials" in report and "non-finite" in report


def test_killed_policy_actor_restarts_and_trials_go_on(ray_session, tmp_path):
    cfg = sim_cfg("polkill", methods=["rl"], rl_trials_per_seed=3, simulated_epoch_seconds=0.4)
    cfg.experiment.train.epochs = 14
    cfg.experiment.sigma.rl.timeout_s = 3.0
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("exp", run_search(cfg, str(tmp_path), quiet=True)))
    runner.start()
    ckpt = tmp_path / "polkill" / "policy" / "latest"
    deadline = time.time() + 120
    while not ckpt.is_dir():
        assert time.time() < deadline and runner.is_alive(), "policy never checkpointed"
        time.sleep(0.2)
    server = ray.get_actor(policy_server_name(cfg))
    before = ray.get(server.stats.remote())
    os.kill(before["pid"], signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive()
    exp = out["exp"]
    check_records_complete(exp, 14)
    stats = json.loads((exp / "policy_stats.json").read_text())
    assert stats["pid"] != before["pid"] and str(stats["restored_from"]).endswith("latest")
    assert stats["updates"] >= before["updates"]


def test_killed_driver_then_resume_finishes(ray_session, tmp_path):
    cfg = sim_cfg("driver", simulated_epoch_seconds=0.5)
    cfg.experiment.train.epochs = 16
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "distlmk", "search", "--config", str(path), "--out", str(tmp_path),
           "--address", address]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "driver" / "records.jsonl"
    deadline = time.time() + 120
    while not (journal.is_file() and len(journal.read_text().splitlines()) >= 6):
        assert time.time() < deadline and proc.poll() is None, "the driver made no progress"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "driver" / "run_info.json").exists()  # it really died mid-run
    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--resume"]) == 0
    rec = check_records_complete(tmp_path / "driver", 16)
    assert rec["trial_id"].nunique() == 3


def test_bad_input_is_rejected_before_any_compute(tmp_path, capsys, cache_dir):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"not a png")
    (root / "landmarks.csv").write_text("image,landmark,x,y\na.png,0,1,1\n")
    cfg = to_dict(sim_cfg("bad", simulated=False))
    cfg["experiment"]["data"] = {"format": "folder", "root": str(root)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.time()
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "a.png: unreadable image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and time.time() - t0 < 10
    (root / "landmarks.csv").write_text("image,landmark,x,y\na.png,0\n")
    assert main(["search", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "landmarks.csv:2" in capsys.readouterr().err
    path.write_text("name: x\nexperiment:\n  trian: {}\n")
    assert main(["search", "--config", str(path)]) == 2
    assert "experiment.trian: unknown key" in capsys.readouterr().err and str(path) in capsys.readouterr().err + str(path)


@pytest.mark.parametrize("kind", ["raise"])
def test_fault_config_is_typed(kind):
    cfg = sim_cfg("x", faults=[{"kind": kind, "epoch": 2, "trials": [1]}])
    assert cfg.faults[0].trials == [1]
