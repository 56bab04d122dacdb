"""Faults that are proven to fire, and survived with nothing lost.

Each test checks the fault through a source independent of distlmk's records: Tune's per-trial
error.txt, the trials' restore markers (`distlmk_restores.jsonl`), the policy actor's pid, and
the trainers' own histories in their last checkpoints, which must equal records.parquet row by
row. Making any fault a no-op makes one of these tests fail."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import yaml
from fault_checks import assert_records_match_checkpoints, error_texts, restores, trial_dirs, trial_index

from distlmk import rundir
from distlmk import schema as S
from distlmk.cli import EXIT_TRIALS_FAILED, main
from distlmk.config import SearchConfig, from_dict, to_dict
from distlmk.population.plan import policy_server_name
from distlmk.rundir import CHECKPOINT_FILE
from distlmk.runner import search
from distlmk.train.checkpoint import load_checkpoint


def sim_cfg(name, faults=(), **over):
    cfg = {
        "name": name, "simulation": {"enabled": True}, "seeds": [0], "methods": ["fixed", "rl"],
        "fixed_sigmas": [2.0], "rl_trials_per_seed": 2,
        "experiment": {"data": {"num_landmarks": 5}, "train": {"epochs": 6}},
        "resources": {"cpu": 0.5}, "max_failures": 2, "faults": {"inject": list(faults)},
        "policy": {"train_batch_rows": 32, "minibatch_size": 16, "num_epochs": 1},
    }
    cfg.update(over)
    return from_dict(SearchConfig, cfg, "test")


def by_index(exp: Path, per_trial: dict) -> dict:
    index = trial_index(exp)
    return {index[tid]: v for tid, v in per_trial.items()}


def test_kill_raise_a_second_failure_and_nan_every_attempt(ray_session, tmp_path):
    """One population, three faults. Trial 0's worker is SIGKILLed at epoch 3; trial 1 raises at epoch 2,
    and again at epoch 4 of its second attempt; trial 2 (rl) turns NaN at epoch 2 on every attempt.
    Tune's error files, the restore markers and the checkpointed histories show exactly that: 0 and 1
    finish from their checkpoints, 2 ends in error with its reason in the report, and `distlmk search`
    exits 3."""
    faults = [
        {"kind": "kill", "epoch": 3, "trials": [0]},
        {"kind": "raise", "epoch": 2, "trials": [1]},
        {"kind": "raise", "epoch": 4, "trials": [1], "attempts": [1]},
        {"kind": "nan", "epoch": 2, "trials": [2], "attempts": []},
    ]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(sim_cfg("faults", faults, max_failures=2))))
    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--quiet"]) == EXIT_TRIALS_FAILED
    exp = tmp_path / "faults"
    errors, restored = by_index(exp, error_texts(exp)), by_index(exp, restores(exp))
    assert set(errors) == {0, 1, 2} and set(restored) == {0, 1, 2}, (errors.keys(), restored.keys())
    assert "died" in errors[0].lower() or "exit" in errors[0].lower(), errors[0][-500:]
    assert errors[0].count("Failure # ") == 1
    assert errors[1].count("Failure # ") == 2  # Tune's count of this trial's failures
    assert "injected failure after epoch 2" in errors[1] and "injected failure after epoch 4" in errors[1]
    assert errors[2].count("Failure # ") == 3 and "non-finite" in errors[2]  # the first try and both retries
    assert [r["attempt"] for r in restored[0]] == [1]
    assert [r["attempt"] for r in restored[1]] == [1, 2]
    assert [r["epoch"] for r in restored[1]] == [2, 4]  # each retry resumed from the failed epoch's checkpoint
    assert [r["epoch"] for r in restored[2]] == [1, 1]  # both retries from its epoch-1 checkpoint: NaN again at 2
    assert restored[0][0]["pid"] != os.getpid()
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 3
    bad = summary[summary["status"] == "error"]
    assert len(bad) == 1 and bad["method"].iloc[0] == "rl" and "non-finite" in bad["error"].iloc[0]
    assert set(summary.loc[summary["status"] != "error", "status"]) <= {"completed", "stopped"}
    records = assert_records_match_checkpoints(exp)  # each trial's records equal its own checkpointed history
    last = records.groupby(S.TRIAL_ID)[S.EPOCH].max()
    assert sorted(last) == [1, 6, 6]  # the NaN trial never got past epoch 1; the others finished
    report = (exp / "report.md").read_text()
    assert "## Failed trials" in report and "non-finite" in report
    assert json.loads((exp / "run_info.json").read_text())["num_errors"] == 1
    # `distlmk analyze` on the failed experiment: the failure and its reason are in its report
    assert main(["analyze", str(exp)]) == 0
    analysis = (exp / "analysis" / "report.md").read_text()
    assert "Experiment finished" in analysis and "1 error" in analysis and "non-finite" in analysis
    assert (exp / "analysis" / "learning_curves.png").stat().st_size > 0


def test_every_trainer_satisfies_the_protocol_and_honours_the_nan_fault(tiny_experiment):
    from distlmk.config import ExperimentConfig
    from distlmk.sim.trainer import PackedSimulatedTrainer, SimulatedTrainer
    from distlmk.train.base import EpochTrainer
    from distlmk.train.errors import NonFiniteLossError
    from distlmk.train.trainer import Trainer

    exp = from_dict(ExperimentConfig, {"data": {"num_landmarks": 3}, "train": {"epochs": 3}})
    for trainer in (Trainer(tiny_experiment), SimulatedTrainer(exp, trial_id="s"), PackedSimulatedTrainer(exp, "t", 3)):
        assert isinstance(trainer, EpochTrainer), type(trainer).__name__
        trainer.run_epoch()
        trainer.poison_loss = True
        with pytest.raises(NonFiniteLossError):
            trainer.run_epoch()


def test_killed_policy_actor_restarts_and_trials_go_on(ray_session, tmp_path):
    """SIGKILL the policy actor mid-run: trials see the outage (policy_failed), keep training, reach
    the restarted actor (new pid, restored from its checkpoint), and PPO updates continue."""
    cfg = sim_cfg("polkill", methods=["rl"], rl_trials_per_seed=3,
                  simulation={"enabled": True, "epoch_seconds": 0.4})
    cfg.experiment.train.epochs = 14
    cfg.experiment.sigma.rl.timeout_s = 1.0
    cfg.experiment.sigma.rl.min_progress_to_stop = 1.1  # no early stops: every trial lives through it
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("exp", search(cfg, str(tmp_path)).exp_dir))
    runner.start()
    ckpt = tmp_path / "polkill" / "policy" / "latest"
    deadline = time.time() + 120
    while not ckpt.is_dir():
        assert time.time() < deadline and runner.is_alive(), "policy never checkpointed"
        time.sleep(0.2)
    server = ray.get_actor(policy_server_name(cfg))
    before = ray.get(server.stats.remote())
    killed_at = time.time()
    os.kill(before["pid"], signal.SIGKILL)
    # `distlmk analyze` while the experiment runs: a report of what is there so far
    records = tmp_path / "polkill" / "records.parquet"
    while not records.is_file():
        assert time.time() < deadline + 60 and runner.is_alive(), "no records while running"
        time.sleep(0.2)
    assert main(["analyze", str(tmp_path / "polkill")]) == 0
    live = (tmp_path / "polkill" / "analysis" / "report.md").read_text()
    assert "still running or interrupted" in live and "running" in live
    runner.join(timeout=240)
    assert not runner.is_alive()
    exp = out["exp"]
    rec = assert_records_match_checkpoints(exp, expect_epochs=14)
    stats = json.loads((exp / "policy_stats.json").read_text())
    assert stats["pid"] != before["pid"] and str(stats["restored_from"]).endswith("latest")
    failed = rec[rec[S.POLICY_FAILED].astype(bool)]
    assert len(failed) > 0, "no trial saw the outage"
    assert failed["timestamp"].min() >= killed_at - 1.0  # the outage came from the kill
    after = rec[rec["timestamp"] > failed["timestamp"].max()]
    assert len(after) > 0 and not after[S.POLICY_FAILED].astype(bool).any(), "trials never reached the policy again"
    history = json.loads((exp / "policy_history.json").read_text())  # the restarted actor's own updates
    assert history and stats["updates"] > before["updates"]


def _checkpoint_epochs(exp: Path) -> dict[str, dict[str, int]]:
    """trial folder name -> {checkpoint folder name: the epoch inside its trainer.pt} (complete ones only)."""
    out: dict[str, dict[str, int]] = {}
    for ckpt in exp.glob("*/checkpoint_*"):
        try:
            hist = load_checkpoint(ckpt / CHECKPOINT_FILE)["history"]
        except Exception:  # torn by the kill: not a checkpoint
            continue
        out.setdefault(ckpt.parent.name, {})[ckpt.name] = int(hist[-1][S.EPOCH]) if hist else 0
    return out


def _newest_epoch_on_disk(exp: Path) -> int:
    epochs = []
    for f in exp.glob(f"*/checkpoint_*/{rundir.METRICS_FILE}"):
        with contextlib.suppress(OSError, ValueError):
            epochs.append(int(json.loads(f.read_text())[S.EPOCH]))
    return max(epochs, default=0)


# (experiment_snapshot_s, keep_checkpoints, when to SIGKILL the driver, rl trials (with the policy actor))
KILL_POINTS = {
    # Tune snapshots every second; kill once the journal holds 6 results
    "journalled": (1.0, 4, ("journal", 6), True),
    # Tune's only snapshot is from the start (no checkpoint in it); kill the moment a trial has
    # persisted its epoch-5 checkpoint, often before the driver has even journalled that result
    "after_checkpoint_old_snapshot": (600.0, 4, ("checkpoint", 5), False),
    # a snapshot a few seconds old whose checkpoints num_to_keep=2 has deleted since
    "stale_snapshot_pruned": (3.0, 2, ("checkpoint", 11), False),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_driver_then_resume_finishes(ray_session, tmp_path, point):
    """SIGKILL the driver mid-run, then `--resume`: every unfinished trial continues from its own newest
    checkpoint (restore marker epoch == its last checkpoint's epoch before the kill), even when Tune's
    experiment snapshot is older than the kill; no checkpoint folder written before the kill is
    overwritten; records equal the trainers' histories row by row."""
    snapshot_s, keep, (watch, at), rl = KILL_POINTS[point]
    trials = {} if rl else {"methods": ["fixed"], "fixed_sigmas": [1.5, 2.0, 3.0]}  # no policy: faster
    cfg = sim_cfg("driver", simulation={"enabled": True, "epoch_seconds": 0.5},
                  experiment_snapshot_s=snapshot_s, keep_checkpoints=keep, **trials)
    cfg.experiment.train.epochs = epochs = 16
    cfg.experiment.sigma.rl.min_progress_to_stop = 1.1  # rl trials run every epoch: none finishes early
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "distlmk", "search", "--config", str(path), "--out", str(tmp_path),
           "--address", address, "--quiet"]
    log = (tmp_path / "driver.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    exp = tmp_path / "driver"
    journal = exp / "records.jsonl"

    def reached() -> bool:
        if watch == "journal":
            return journal.is_file() and len(journal.read_text().splitlines()) >= at
        return _newest_epoch_on_disk(exp) >= at

    deadline = time.time() + 180
    while not reached():
        assert time.time() < deadline and proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (exp / "run_info.json").exists()  # it really died mid-run
    before: dict = {"": {}}
    while before != (before := _checkpoint_epochs(exp)):  # the trials' workers die with their driver
        time.sleep(1.5)
    last = {trial: max(ckpts.values()) for trial, ckpts in before.items()}
    unfinished = {trial for trial, epoch in last.items() if epoch < epochs}
    assert unfinished, f"every trial had finished before the kill: {last}"
    if watch == "checkpoint":  # Tune's snapshot is older than the newest checkpoint
        snapshot = max(f.stat().st_mtime for f in exp.glob("experiment_state-*.json"))
        newest = max(f.stat().st_mtime for f in exp.glob("*/checkpoint_*/trainer.pt"))
        assert snapshot < newest, "the experiment snapshot is not older than the kill"

    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--resume", "--quiet"]) == 0
    rec = assert_records_match_checkpoints(exp, expect_epochs=epochs)
    assert rec["trial_id"].nunique() == 3
    dirs = {d.name: tid for tid, d in trial_dirs(exp).items()}
    restored = restores(exp)
    for trial, epoch in last.items():
        markers = restored.get(dirs[trial], [])
        if trial in unfinished:
            assert markers, f"{trial}: not restored from a checkpoint on --resume (its last epoch was {epoch})"
        if markers:
            assert markers[0]["epoch"] == epoch, (trial, markers, before[trial])
            assert len(markers) == 1, markers  # no fault after the resume: one restore
    after = _checkpoint_epochs(exp)
    for trial, ckpts in before.items():  # Tune's later checkpoints went to new folders
        for name, epoch in ckpts.items():
            assert after.get(trial, {}).get(name, epoch) == epoch, (trial, name, epoch, after.get(trial))
    assert set(rec[S.EPOCH]) == set(range(1, epochs + 1))


def test_real_network_population_with_a_killed_trial(ray_session, tmp_path, tiny_experiment):
    """The real tiny U-Net inside Tune, every method incl. rl with decision_interval 2; the fixed
    trial's worker is SIGKILLed at epoch 3 and resumes from its checkpoint (weights, optimiser)."""
    exp_cfg = to_dict(tiny_experiment)
    exp_cfg["train"]["epochs"] = 4
    exp_cfg["sigma"]["rl"] = {"decision_interval": 2, "timeout_s": 30.0, "min_progress_to_stop": 1.1}
    cfg = from_dict(SearchConfig, {
        "name": "realnet", "seeds": [0], "methods": ["fixed", "learned", "adaloss", "rl"], "fixed_sigmas": [2.0],
        "experiment": exp_cfg, "resources": {"cpu": 1.0}, "max_failures": 1,
        "policy": {"train_batch_rows": 16, "minibatch_size": 8, "num_epochs": 1},
        "faults": {"inject": [{"kind": "kill", "epoch": 3, "trials": [0]}]},
    }, "test")
    exp = search(cfg, str(tmp_path)).exp_dir
    rec = assert_records_match_checkpoints(exp, expect_epochs=4)
    assert by_index(exp, restores(exp)).keys() == {0}
    summary = pd.read_parquet(exp / "summary.parquet")
    assert len(summary) == 4 and set(summary["status"]) == {"completed"}
    assert set(summary["method"]) == {"fixed", "learned", "adaloss", "rl"}
    test_mre = summary[S.test_key("test", "mre_mm")]
    assert test_mre.notna().all() and (test_mre > 0).all()
    assert set(rec[S.DEVICE]) == {"cpu"}  # a network, not the cost model ("sim")
    rl = rec[rec["method"] == "rl"].sort_values("iteration")
    # decisions at epochs 2 and 4 only: sigma may change after epoch 2, never after epochs 1 or 3
    moved = [not np.allclose(a, b) for a, b in zip(rl[S.SIGMA_USED], rl[S.SIGMA_NEXT], strict=True)]
    assert moved[0] is False and moved[2] is False
    assert rl[S.RL_REWARD].notna().sum() >= 1
    stats = json.loads((exp / "policy_stats.json").read_text())
    # stats count rows: one decision at epoch 2 (19 landmark rows + the trial row); the request at
    # epoch 4, the last, only ends the episodes
    assert stats["requests"] == 2 and stats["decisions"] == 19 + 1, stats


def test_bad_input_is_rejected_before_any_compute(tmp_path, capsys, cache_dir, monkeypatch):
    """Bad data or config exits 2 before anything is computed: Ray is never started or joined,
    no policy actor and no Tuner are made, and no experiment folder (trials, records) exists."""
    import ray.tune

    import distlmk.population.localray as localray
    import distlmk.population.search as population_search

    started = []

    def spy(name):
        def called(*args, **kwargs):
            started.append(name)
            raise AssertionError(f"{name} called for a rejected input")
        return called

    for module, name in ((population_search, "init_ray"), (localray, "init_ray"), (ray, "init"),
                         (population_search, "start_policy"), (ray.tune, "Tuner")):
        monkeypatch.setattr(module, name, spy(f"{module.__name__}.{name}"))
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"not a png")
    (root / "landmarks.csv").write_text("image,landmark,x,y\na.png,0,1,1\n")
    cfg = to_dict(sim_cfg("bad", simulation={"enabled": False}))
    cfg["experiment"]["data"] = {"format": "folder", "root": str(root)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["search", "--config", str(path), "--out", str(out)]) == 2
    assert "a.png: unreadable image" in capsys.readouterr().err
    (root / "landmarks.csv").write_text("image,landmark,x,y\na.png,0\n")
    assert main(["search", "--config", str(path), "--out", str(out)]) == 2
    assert "landmarks.csv:2" in capsys.readouterr().err
    assert started == [], started
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # no experiment, trial or records
    path.write_text("name: x\nexperiment:\n  trian: {}\n")
    monkeypatch.chdir(tmp_path)  # the default --out (results/) is relative
    assert main(["search", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "experiment.trian: unknown key" in err and str(path) in err
    assert started == [] and not (tmp_path / "results").exists()


def test_fault_config_is_typed_and_old_keys_point_to_new_blocks(tmp_path):
    cfg = sim_cfg("x", [{"kind": "raise", "epoch": 2, "trials": [1], "attempts": [0, 1]}])
    assert cfg.faults.inject[0].trials == [1] and cfg.faults.inject[0].attempts == [0, 1]
    from distlmk.config import ConfigError

    with pytest.raises(ConfigError, match="simulation.enabled"):
        from_dict(SearchConfig, {"simulated": True})
    with pytest.raises(ConfigError, match="faults.inject"):
        from_dict(SearchConfig, {"faults": [{"kind": "kill"}]})
