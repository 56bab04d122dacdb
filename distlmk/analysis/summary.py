"""From per-iteration records to one row per trial and the method comparison (report.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import schema as S
from distlmk.atomic import atomic_write, atomic_write_text

FINISHED = ("completed", "stopped")  # trial statuses that count as finished (see summarize_trials)



def load_records(exp_dir: str | Path) -> pd.DataFrame:
    path = Path(exp_dir) / S.RECORDS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no records; is this a `distlmk search` experiment folder?"
        )
    return pd.read_parquet(path)


def load_errors(exp_dir: str | Path) -> pd.DataFrame:
    path = Path(exp_dir) / S.STATUS_FILE
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
        seconds = float(g["time_this_iter_s"].fillna(0).sum()) if "time_this_iter_s" in g else 0.0
        row = {
            S.TRIAL_ID: tid,
            S.METHOD: last[S.METHOD],
            S.VARIANT: last[S.VARIANT],
            S.SEED: int(last[S.SEED]),
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
            rows.append({S.TRIAL_ID: tid, "status": "error", "error": msg})
    return pd.DataFrame(rows)


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v))


def _pm(values: pd.Series, fmt: str = "{:.2f}") -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return fmt.format(v.iloc[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def method_table(summary: pd.DataFrame) -> str:
    """Markdown table by method variant: validation and test MRE/SDR mean ± std over seeds, compute."""
    splits = S.test_splits(summary.columns)
    head = ["method", "variant", "trials", "done", "val MRE (mm)"]
    for split in splits:
        head += [f"{split} MRE (mm)"] + [f"{split} SDR {t:g} mm (%)" for t in S.SDR_THRESHOLDS_MM]
    head += ["epochs used", "trial-epochs", "compute (cpu·s)", "total reward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if S.METHOD not in summary:  # no trial reported a result (each failed before its first epoch ended)
        return "\n".join(lines)
    ok = summary[summary["status"].isin(FINISHED)] if "status" in summary else summary
    for (method, variant), g in summary.dropna(subset=[S.METHOD]).groupby([S.METHOD, S.VARIANT], sort=True):
        d = ok[(ok[S.METHOD] == method) & (ok[S.VARIANT] == variant)]
        cells = [method, variant, str(len(g)), str(len(d)), _pm(d[S.VAL_MRE])]
        for split in splits:
            cells.append(_pm(d[S.test_key(split, "mre_mm")]))
            cells += [_pm(d[S.test_key(split, n)], "{:.1f}") for n in S.SDR_NAMES]
        reward = _pm(d["rl/total_reward"]) if method == "rl" else "–"
        cells += [_pm(d["epochs"], "{:.1f}"), _pm(d[S.COST_TRIAL_EPOCHS], "{:.0f}"), _pm(d["cpu_s"], "{:.0f}"), reward]
        lines.append("| " + " | ".join(cells) + " |")
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
    bcols = [c for c in summary.columns if str(c).endswith("/baseline_mean_mre_mm")]
    base = summary[bcols[0]] if bcols else None
    if base is not None and base.notna().any():
        parts.append(
            f"Mean-position baseline (predict each landmark's mean training position): "
            f"{base.dropna().mean():.2f} mm test MRE."
        )
    parts += [
        "",
        "## Method comparison (mean ± std over seeds)",
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
    rl = records[records[S.METHOD] == "rl"] if S.METHOD in records else records.iloc[:0]
    if len(rl):
        sig = np.stack(rl[S.SIGMA_NEXT].to_numpy())
        parts += [
            "## RL sigma decisions",
            "",
            f"{len(rl)} rl trial-iterations; sigma range {sig.min():.2f}–{sig.max():.2f} px, "
            f"mean per-iteration spread across landmarks {sig.std(axis=1).mean():.2f} px; "
            f"early stops: {int(rl[S.RL_STOPPED].fillna(False).sum())}.",
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
