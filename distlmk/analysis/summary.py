"""From per-iteration records to one row per trial and the method comparison (report.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from distlmk.atomic import atomic_write, atomic_write_text
from distlmk.population.records import RECORDS_FILE, STATUS_FILE

SDR_KEYS = ("2_0", "2_5", "3_0", "4_0")


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
    """One row per trial: final metrics, epochs used, compute used, total reward, status."""
    rows = []
    ended = errors.get("status", pd.Series([], dtype=object))
    err = dict(zip(errors.loc[ended == "error", "trial_id"], errors.loc[ended == "error", "error"], strict=True))
    terminated = set(errors.loc[ended == "terminated", "trial_id"])
    for tid, g in records.sort_values("iteration").groupby("trial_id", sort=True):
        last = g.iloc[-1]
        has_test = "test_mre_mm" in g and pd.notna(last.get("test_mre_mm"))
        stopped = bool(g["stopped"].fillna(False).any())
        if tid in err:
            status = "error"
        elif stopped:
            status = "stopped"  # by the central policy
        elif has_test:
            status = "completed"
        else:  # ended early by the scheduler (ASHA), or still running
            status = "cut" if tid in terminated else "running"
        seconds = float(g["time_this_iter_s"].fillna(0).sum())
        row = {
            "trial_id": tid,
            "method": last["method"],
            "variant": last["variant"],
            "seed": int(last["seed"]),
            "status": status,
            "error": err.get(tid),
            "epochs": int(last["epoch"]),
            "iterations": len(g),
            "val_mre_mm": float(last["mre_mm"]),
            "test_mre_mm": float(last["test_mre_mm"]) if has_test else np.nan,
            "total_reward": float(g["reward"].fillna(0).sum()),
            "wall_s": seconds,
            "cpu_s": seconds * cpu,
            "gpu_s": seconds * gpu,
            "final_sigma": list(last["sigma_next"]),
        }
        for k in SDR_KEYS:
            col = f"test_sdr_{k}"
            row[col] = (
                float(last[col]) if has_test and col in last and pd.notna(last[col]) else np.nan
            )
        if "baseline_mean_mre_mm" in last and pd.notna(last.get("baseline_mean_mre_mm")):
            row["baseline_mean_mre_mm"] = float(last["baseline_mean_mre_mm"])
        rows.append(row)
    for tid, msg in err.items():  # trials that failed before reporting anything
        if tid not in set(records.get("trial_id", [])):
            rows.append({"trial_id": tid, "status": "error", "error": msg})
    return pd.DataFrame(rows)


def _pm(values: pd.Series, fmt: str = "{:.2f}") -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return fmt.format(v.iloc[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def method_table(summary: pd.DataFrame) -> str:
    """Markdown table by method variant: test MRE/SDR mean ± std over seeds, epochs, compute, reward."""
    head = (
        "| method | variant | trials | done | test MRE (mm) | SDR 2 mm (%) | SDR 2.5 mm (%) | SDR 3 mm (%) "
        "| SDR 4 mm (%) | epochs used | compute (cpu·s) | total reward |"
    )
    lines = [head, "|" + "---|" * 12]
    ok = (
        summary[summary["status"].isin(["completed", "stopped"])]
        if "status" in summary
        else summary
    )
    for (method, variant), g in summary.dropna(subset=["method"]).groupby(
        ["method", "variant"], sort=True
    ):
        d = ok[(ok["method"] == method) & (ok["variant"] == variant)]
        reward = _pm(d["total_reward"]) if method == "rl" else "–"
        lines.append(
            f"| {method} | {variant} | {len(g)} | {len(d)} | {_pm(d['test_mre_mm'])} | "
            + " | ".join(_pm(d[f"test_sdr_{k}"], "{:.1f}") for k in SDR_KEYS)
            + f" | {_pm(d['epochs'], '{:.1f}')} | {_pm(d['cpu_s'], '{:.0f}')} | {reward} |"
        )
    return "\n".join(lines)


def write_summary_and_report(
    exp_dir: str | Path,
    cpu: float = 1.0,
    gpu: float = 0.0,
    policy_stats: dict | None = None,
    title: str | None = None,
) -> pd.DataFrame:
    exp_dir = Path(exp_dir)
    records, errors = load_records(exp_dir), load_errors(exp_dir)
    summary = summarize_trials(records, errors, cpu, gpu)
    atomic_write(exp_dir / "summary.parquet", lambda p: summary.to_parquet(p, index=False))
    atomic_write_text(
        exp_dir / "report.md", render_report(summary, records, policy_stats, title or exp_dir.name)
    )
    return summary


def render_report(
    summary: pd.DataFrame, records: pd.DataFrame, policy_stats: dict | None, title: str
) -> str:
    parts = [f"# distlmk population: {title}", ""]
    counts = summary["status"].value_counts().to_dict() if "status" in summary else {}
    parts.append("Trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ".")
    if counts.get("running"):
        parts.append(
            "The experiment is still running or was interrupted: running trials have no test metrics yet."
        )
    base = summary.get("baseline_mean_mre_mm")
    if base is not None and base.notna().any():
        parts.append(
            f"Mean-position baseline (predict each landmark's mean training position): "
            f"{base.dropna().mean():.2f} mm test MRE."
        )
    parts += [
        "",
        "## Method comparison (test split, mean ± std over seeds)",
        "",
        method_table(summary),
        "",
    ]
    failed = summary[summary["status"] == "error"] if "status" in summary else summary.iloc[:0]
    if len(failed):
        parts += ["## Failed trials", "", "| trial | method | reason |", "|---|---|---|"]
        parts += [
            f"| {r.trial_id} | {getattr(r, 'method', '–')} | {r.error} |" for r in failed.itertuples()
        ]
        parts.append("")
    rl = records[records["method"] == "rl"] if "method" in records else records.iloc[:0]
    if len(rl):
        sig = np.stack(rl["sigma_next"].to_numpy())
        parts += [
            "## RL sigma decisions",
            "",
            f"{len(rl)} rl trial-iterations; sigma range {sig.min():.2f}–{sig.max():.2f} px, "
            f"mean per-iteration spread across landmarks {sig.std(axis=1).mean():.2f} px; "
            f"early stops: {int(rl['stopped'].fillna(False).sum())}.",
            "",
        ]
    if policy_stats:
        keys = (
            "updates",
            "env_steps",
            "decisions",
            "requests",
            "episodes",
            "mean_trial_return",
            "mean_landmark_return",
            "mean_batch",
            "restored_from",
            "frozen",
        )
        parts += ["## Central policy", "", "| stat | value |", "|---|---|"]
        parts += [f"| {k} | {policy_stats.get(k)} |" for k in keys]
        for k, v in (policy_stats.get("losses") or {}).items():
            parts.append(f"| last {k} | {v:.4g} |")
        parts.append("")
    return "\n".join(parts)
