"""The scaling ablation's analysis: per-run throughput, time to target and policy load, read
from the files a finished population leaves (its run info, records and policy stats: `distlmk.rundir`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import schema as S
from distlmk.atomic import atomic_write, atomic_write_text
from distlmk.rundir import RECORDS_FILE, SCALING_TABLE, read_policy_stats, read_run_info


def measure_run(exp_dir: Path, target_mre_mm: float) -> dict:
    """Throughput, time to target and policy load of one finished population."""
    info = read_run_info(exp_dir)
    rec = pd.read_parquet(exp_dir / RECORDS_FILE)
    stats = read_policy_stats(exp_dir) or {}
    wall = float(info.elapsed_s)
    trial_epochs = int(rec[S.COST_TRIAL_EPOCHS].fillna(1).sum()) if S.COST_TRIAL_EPOCHS in rec else len(rec)
    col = rec[S.POLICY_LATENCIES_MS] if S.POLICY_LATENCIES_MS in rec else []
    lists = [a for a in map(S.as_array, col) if a is not None]
    if lists:
        lat = np.concatenate(lists)
    else:
        lat = rec[S.POLICY_LATENCY_MS].dropna().to_numpy(float) if S.POLICY_LATENCY_MS in rec else np.array([])
    hit = rec[rec[S.VAL_MRE] <= target_mre_mm]
    t_target = float(hit["timestamp"].min() - info.started_at) if len(hit) else math.nan
    return {
        "wall_s": wall, "trial_epochs": trial_epochs, "trial_epochs_per_hour": trial_epochs / wall * 3600,
        "time_to_target_s": t_target, "policy_requests": stats.get("requests", 0),
        "policy_requests_per_s": stats.get("requests", 0) / wall, "policy_updates": stats.get("updates", 0),
        "policy_mean_batch": stats.get("mean_batch", 0.0),
        "policy_p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "policy_p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan,
        "final_mean_val_mre_mm": float(rec.sort_values(S.ITERATION).groupby(S.TRIAL_ID)[S.VAL_MRE].last().mean()),
    }


def markdown_table(df: pd.DataFrame) -> str:
    def fmt(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_scaling(root: Path, rows: list[dict]) -> pd.DataFrame:
    """The scaling table (Parquet), scaling.md and scaling.png of an ablation folder."""
    from distlmk.analysis.plots import scaling_curves

    table = pd.DataFrame(rows)
    atomic_write(root / SCALING_TABLE, lambda p: table.to_parquet(p, index=False))
    atomic_write_text(root / "scaling.md", markdown_table(table))
    scaling_curves(table, root / "scaling.png")
    return table
