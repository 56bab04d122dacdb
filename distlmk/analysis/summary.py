"""From per-iteration records to one row per trial (the summary); `report` renders both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import schema as S
from distlmk.atomic import atomic_write
from distlmk.rundir import RECORDS_FILE, STATUS_FILE, SUMMARY_FILE

FINISHED = ("completed", "stopped")  # trial statuses that count as finished (see summarize_trials)


def load_records(exp_dir: str | Path) -> pd.DataFrame:
    path = Path(exp_dir) / RECORDS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no records; is this a `distlmk search` experiment folder?"
        )
    return pd.read_parquet(path)


def load_errors(exp_dir: str | Path) -> pd.DataFrame:
    path = Path(exp_dir) / STATUS_FILE
    errors = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    for col in ("trial_id", "status", "error"):  # no trial has ended yet: an empty file, trial_id only
        if col not in errors:
            errors[col] = pd.Series(dtype=object)
    return errors


def summarize_trials(
    records: pd.DataFrame, errors: pd.DataFrame, cpu: float = 1.0, gpu: float = 0.0
) -> pd.DataFrame:
    """One row per trial: final validation and test metrics (schema names), compute, status."""
    rows = []
    ended = errors.get("status", pd.Series([], dtype=object))
    err = dict(zip(errors.loc[ended == "error", "trial_id"], errors.loc[ended == "error", "error"], strict=True))
    terminated = set(errors.loc[ended == "terminated", "trial_id"])
    trial_dirs = dict(zip(errors["trial_id"], errors[S.TRIAL_DIR], strict=True)) if S.TRIAL_DIR in errors else {}
    splits = S.test_splits(records.columns)
    reported = records.sort_values(S.ITERATION).groupby(S.TRIAL_ID, sort=True) if len(records) else []
    for tid, g in reported:  # no records at all: every trial failed before its first result
        last = g.iloc[-1]
        has_test = any(pd.notna(last.get(S.test_key(s, "mre_mm"))) for s in splits)
        stopped = bool(g[S.RL_STOPPED].fillna(False).any())
        if tid in err:
            status = "error"
        elif stopped:
            status = "stopped"  # by the central policy
        elif has_test or int(last[S.EPOCH]) >= int(last.get(S.COST_EPOCH_BUDGET) or 10**9):
            status = "completed"  # with test metrics, or the whole budget without test evaluation
        else:  # ended early by the scheduler (ASHA), or still running
            status = "cut" if tid in terminated else "running"
        folder = last.get(S.TRIAL_DIR)
        seconds = float(g["time_this_iter_s"].fillna(0).sum()) if "time_this_iter_s" in g else 0.0
        row = {
            S.TRIAL_ID: tid,
            S.METHOD: last[S.METHOD],
            S.VARIANT: last[S.VARIANT],
            S.SEED: int(last[S.SEED]),
            S.TRIAL_DIR: folder if _present(folder) else trial_dirs.get(tid),
            "status": status,
            "error": err.get(tid),
            "epochs": int(last[S.EPOCH]),
            "iterations": len(g),
            S.COST_TRIAL_EPOCHS: int(g[S.COST_TRIAL_EPOCHS].fillna(1).sum()) if S.COST_TRIAL_EPOCHS in g else len(g),
            S.VAL_MRE: float(last[S.VAL_MRE]),
            S.VAL_PER_LANDMARK: list(last[S.VAL_PER_LANDMARK]),
            "rl/total_reward": float(g[S.RL_REWARD].fillna(0).sum()),
            "wall_s": seconds,
            "cpu_s": seconds * cpu,
            "gpu_s": seconds * gpu,
            "sigma/final": list(last[S.SIGMA_NEXT]),
        }
        for split in splits:
            for name in ("mre_mm", *S.SDR_NAMES, "per_landmark_mre_mm", "errors_mm", "baseline_mean_mre_mm"):
                key = S.test_key(split, name)
                v = last.get(key)
                row[key] = v if _present(v) else np.nan
        rows.append(row)
    for tid, msg in err.items():  # trials that failed before reporting anything
        if tid not in set(records.get(S.TRIAL_ID, [])):
            rows.append({S.TRIAL_ID: tid, S.TRIAL_DIR: trial_dirs.get(tid), "status": "error", "error": msg})
    return pd.DataFrame(rows)


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v))


def write_summary(exp_dir: str | Path, cpu: float = 1.0, gpu: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiment folder's summary (one row per trial), written beside its records;
    returns (summary, records). The report is `distlmk.analysis.report`'s."""
    exp_dir = Path(exp_dir)
    records, errors = load_records(exp_dir), load_errors(exp_dir)
    summary = summarize_trials(records, errors, cpu, gpu)
    atomic_write(exp_dir / SUMMARY_FILE, lambda p: summary.to_parquet(p, index=False))
    return summary, records
