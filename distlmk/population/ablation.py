"""`distlmk ablate`: run the simulated population at several sizes / resources per trial and
measure trial-epochs per hour, time to a target MRE and the central policy's load."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import schema as S
from distlmk.atomic import atomic_write, atomic_write_text
from distlmk.config import AblationConfig
from distlmk.population.search import run_search


def measure_run(exp_dir: Path, target_mre_mm: float) -> dict:
    """Throughput, time to target and policy load of one finished population."""
    info = json.loads((exp_dir / "run_info.json").read_text())
    rec = pd.read_parquet(exp_dir / "records.parquet")
    stats = json.loads((exp_dir / "policy_stats.json").read_text()) if (exp_dir / "policy_stats.json").is_file() else {}
    wall = float(info["elapsed_s"])
    trial_epochs = int(rec[S.COST_TRIAL_EPOCHS].fillna(1).sum()) if S.COST_TRIAL_EPOCHS in rec else len(rec)
    col = rec[S.POLICY_LATENCIES_MS] if S.POLICY_LATENCIES_MS in rec else []
    lists = [np.asarray(x, float) for x in col if x is not None]
    if lists:
        lat = np.concatenate(lists)
    else:
        lat = rec[S.POLICY_LATENCY_MS].dropna().to_numpy(float) if S.POLICY_LATENCY_MS in rec else np.array([])
    hit = rec[rec[S.VAL_MRE] <= target_mre_mm]
    t_target = float(hit["timestamp"].min() - info["started_at"]) if len(hit) else math.nan
    return {
        "wall_s": wall, "trial_epochs": trial_epochs, "trial_epochs_per_hour": trial_epochs / wall * 3600,
        "time_to_target_s": t_target, "policy_requests": stats.get("requests", 0),
        "policy_requests_per_s": stats.get("requests", 0) / wall, "policy_updates": stats.get("updates", 0),
        "policy_mean_batch": stats.get("mean_batch", 0.0),
        "policy_p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "policy_p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan,
        "final_mean_val_mre_mm": float(rec.sort_values("iteration").groupby("trial_id")[S.VAL_MRE].last().mean()),
    }


def markdown_table(df: pd.DataFrame) -> str:
    def fmt(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def run_ablation(cfg: AblationConfig, out_dir: str = "results", address: str | None = None) -> Path:
    root = Path(out_dir).resolve() / cfg.name
    rows = []
    for n in cfg.population_sizes:
        for cpu in cfg.cpu_per_trial:
            pack = max(1, math.ceil(n / cfg.max_trial_processes))
            search = copy.deepcopy(cfg.base)
            search = dataclasses.replace(search, name=f"n{n}_cpu{cpu:g}", simulated=True, methods=["rl"],
                                         seeds=[0], rl_trials_per_seed=math.ceil(n / pack), simulated_pack=pack)
            search.resources.cpu = cpu
            exp = run_search(search, out_dir=str(root), address=address, quiet=True)
            row = {"trials": math.ceil(n / pack) * pack, "cpu_per_process": cpu, "pack": pack,
                   "processes": math.ceil(n / pack), **measure_run(exp, cfg.target_mre_mm)}
            rows.append(row)
            print(f"[ablation] {row['trials']} trials ({row['processes']} processes x {pack}), cpu {cpu}: "
                  f"{row['trial_epochs_per_hour']:.0f} trial-epochs/h, policy {row['policy_requests_per_s']:.0f} req/s, "
                  f"p99 {row['policy_p99_ms']:.1f} ms, time to target {row['time_to_target_s']:.1f} s")
    table = pd.DataFrame(rows)
    atomic_write(root / "scaling.parquet", lambda p: table.to_parquet(p, index=False))
    atomic_write_text(root / "scaling.md", markdown_table(table))
    from distlmk.analysis.plots import scaling_curves

    scaling_curves(table, root / "scaling.png")
    print(table.to_string(index=False))
    return root
