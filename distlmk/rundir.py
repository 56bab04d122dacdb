"""The experiment folder: every file distlmk writes into one, named once, and small typed readers.

A population's folder (`distlmk search`, one `compare` stage, one `ablate` size) holds

  search_config.json     the search config it ran (SEARCH_CONFIG)
  landmark_names.json    the dataset's landmark names, when it has them (LANDMARK_NAMES)
  records.jsonl          the records journal: one line per result until folded (JOURNAL_FILE)
  records.parquet        one row per (trial, iteration) (RECORDS_FILE)
  trial_status.parquet   trials that ended: terminated or error, with the reason (STATUS_FILE)
  summary.parquet        one row per trial (SUMMARY_FILE)
  report.md              the population's report (REPORT_FILE)
  run_info.json          written last: elapsed time, trials, resources, nodes (RUN_INFO)
  policy_stats.json      the central policy's final stats (rl only) (POLICY_STATS)
  policy_history.json    its update history (POLICY_HISTORY)
  policy/                the policy's checkpoints (POLICY_DIR): final/ (POLICY_FINAL), latest/
                         (POLICY_LATEST), server_state.json (SERVER_STATE), history.jsonl (POLICY_UPDATES)
  <trial folder>/        Tune's, one per trial, named in the records' trial_dir column (never parsed):
                         distlmk_restores.jsonl (RESTORES_FILE), checkpoint_NNNNNN/ holding trainer.pt
                         (CHECKPOINT_FILE) and attempt.json (ATTEMPT_FILE)

An ablation's root folder holds scaling.parquet (SCALING_TABLE) beside its runs' folders,
and a comparison's root folder holds comparison.json (COMPARISON_JSON), comparison.md
(COMPARISON_MD) and test_reads.jsonl (TEST_READS) beside its stages' folders.

Writers and readers take the names from here; nothing else spells them. A leaf: standard
library only (pandas is imported by `read_summary` alone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SEARCH_CONFIG = "search_config.json"
LANDMARK_NAMES = "landmark_names.json"
JOURNAL_FILE = "records.jsonl"
RECORDS_FILE = "records.parquet"
STATUS_FILE = "trial_status.parquet"
SUMMARY_FILE = "summary.parquet"
REPORT_FILE = "report.md"
RUN_INFO = "run_info.json"
POLICY_STATS = "policy_stats.json"
POLICY_HISTORY = "policy_history.json"

POLICY_DIR = "policy"
POLICY_FINAL = "final"  # the weights saved when the population ended (what a later stage starts from)
POLICY_LATEST = "latest"  # saved after every update, swapped in whole (what a restarted server reloads)
SERVER_STATE = "server_state.json"  # beside final/ and latest/: the server's counters
POLICY_UPDATES = "history.jsonl"  # one line per policy update, appended

CHECKPOINT_FILE = "trainer.pt"
ATTEMPT_FILE = "attempt.json"  # beside trainer.pt: which start of the trial wrote the checkpoint (0 = first)
METRICS_FILE = "reported.json"  # beside trainer.pt: the result reported with it (population.resume reads it)
RESTORES_FILE = "distlmk_restores.jsonl"  # in the trial's folder: one line per start from a checkpoint
CHECKPOINT_GLOB = "checkpoint_*"  # Tune's checkpoint folders in a trial folder

SCALING_TABLE = "scaling.parquet"

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
TEST_READS = "test_reads.jsonl"


def policy_dir(exp_dir: str | Path) -> Path:
    """The central policy's checkpoint folder of a population."""
    return Path(exp_dir) / POLICY_DIR


def final_policy(exp_dir: str | Path) -> Path:
    """The policy a population ended with (a later population's `policy.checkpoint`)."""
    return policy_dir(exp_dir) / POLICY_FINAL


def trial_path(exp_dir: str | Path, trial_dir: str | None) -> Path | None:
    """A trial's folder from the records' trial_dir (relative to the experiment folder); None without one."""
    if trial_dir is None or trial_dir != trial_dir or not str(trial_dir):  # None, NaN, ""
        return None
    return Path(exp_dir) / str(trial_dir)


def checkpoint_files(trial_dir: str | Path) -> list[Path]:
    """The trainer checkpoints of a trial folder, oldest first (Tune numbers its checkpoint folders)."""
    return sorted(Path(trial_dir).glob(f"{CHECKPOINT_GLOB}/{CHECKPOINT_FILE}"), key=lambda p: p.parent.name)


# --- readers ------------------------------------------------------------------------------


class MissingFileError(FileNotFoundError):
    """An experiment folder lacks a file a reader needs; the message names the file and why it may lack."""


def _missing(path: Path, why: str) -> MissingFileError:
    return MissingFileError(f"{path}: missing; {why}")


def read_json(path: str | Path, why: str = "is this a distlmk experiment folder?") -> Any:
    path = Path(path)
    if not path.is_file():
        raise _missing(path, why)
    return json.loads(path.read_text())


@dataclass(frozen=True)
class RunInfo:
    """run_info.json: what `run_search` writes once the population has ended."""

    elapsed_s: float
    started_at: float
    num_trials: int
    num_errors: int
    resources_per_trial: dict = field(default_factory=dict)  # {"cpu": .., "gpu": ..}
    cluster_resources: dict = field(default_factory=dict)
    address: str = "local"
    ray: str = "local"  # what was done: "local", the address joined, or "existing"
    nodes: list = field(default_factory=list)
    pid: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> RunInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def cpu(self) -> float:
        return float(self.resources_per_trial.get("cpu", 1.0))

    @property
    def gpu(self) -> float:
        return float(self.resources_per_trial.get("gpu", 0.0))


def read_run_info(exp_dir: str | Path) -> RunInfo:
    return RunInfo.from_dict(read_json(
        Path(exp_dir) / RUN_INFO, "the population has not ended (still running, interrupted or failed)"))


def run_info_or_none(exp_dir: str | Path) -> RunInfo | None:
    """The run info, or None while the population runs (or after it was interrupted)."""
    return read_run_info(exp_dir) if (Path(exp_dir) / RUN_INFO).is_file() else None


def read_policy_stats(exp_dir: str | Path, required: bool = False) -> dict | None:
    """The central policy's final stats; None (or, when `required`, an error) without rl trials."""
    path = Path(exp_dir) / POLICY_STATS
    if not path.is_file() and not required:
        return None
    return read_json(path, "no central policy ran here (no rl trials), or the population has not ended")


def read_policy_history(exp_dir: str | Path) -> list[dict]:
    """The policy's update history ([] without one)."""
    path = Path(exp_dir) / POLICY_HISTORY
    return read_json(path) if path.is_file() else []


def read_search_config(exp_dir: str | Path, required: bool = True) -> dict:
    """The search config the population ran, as saved (a dict: older folders may hold older keys)."""
    path = Path(exp_dir) / SEARCH_CONFIG
    if not path.is_file() and not required:
        return {}
    return read_json(path, "is this a `distlmk search` experiment folder?")


def read_landmark_names(exp_dir: str | Path) -> list[str] | None:
    path = Path(exp_dir) / LANDMARK_NAMES
    return read_json(path) if path.is_file() else None


def read_summary(exp_dir: str | Path):
    """summary.parquet (one row per trial) as a DataFrame."""
    path = Path(exp_dir) / SUMMARY_FILE
    if not path.is_file():
        raise _missing(path, "the population has not ended, or its summary was not written (`distlmk search` "
                             "writes it after the run)")
    import pandas as pd

    return pd.read_parquet(path)


def has_finished(exp_dir: str | Path) -> bool:
    """The population ended and its summary was written (what a resumed comparison reuses)."""
    return (Path(exp_dir) / RUN_INFO).is_file() and (Path(exp_dir) / SUMMARY_FILE).is_file()
