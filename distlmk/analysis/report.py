"""Every Markdown report of an experiment folder, rendered here only:

- the population's report (`write_summary_and_report`, after `distlmk search`): the summary,
  the method table, failed trials, rl sigma decisions and the central policy's stats;
- `distlmk analyze DIR` (`analyze`): plots + a report of a (running, finished or failed)
  experiment under DIR/analysis, or of an ablation's scaling table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from distlmk import rundir
from distlmk import schema as S
from distlmk.analysis import plots
from distlmk.analysis.summary import FINISHED, load_errors, load_records, summarize_trials, write_summary
from distlmk.atomic import atomic_write_text


def tune_result_check(exp_dir: Path, records: pd.DataFrame) -> pd.DataFrame:
    """Rows per trial in Tune's result.json vs distlmk's records (Tune has lost rows after PBT)."""
    counts = records.groupby("trial_id")["iteration"].nunique().to_dict()
    rows = []
    for f in sorted(exp_dir.glob("*/result.json")):
        lines = [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()]
        if not lines:
            continue
        tid = lines[-1].get("trial_id")
        its = {ln.get("training_iteration") for ln in lines}
        rows.append(
            {
                "trial_id": tid,
                "tune_rows": len(lines),
                "tune_iterations": len(its),
                "records_iterations": counts.get(tid, 0),
            }
        )
    return pd.DataFrame(rows)


# --- the population's report (beside the records) -----------------------------------------


def status_counts(summary: pd.DataFrame) -> dict:
    """Trial status -> how many trials have it."""
    return summary["status"].value_counts().to_dict() if "status" in summary else {}


def trials_line(counts: dict) -> str:
    return "Trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + "."


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
    """The population's summary (`analysis.summary.write_summary`) and its report; returns the summary."""
    exp_dir = Path(exp_dir)
    summary, records = write_summary(exp_dir, cpu, gpu)
    atomic_write_text(
        exp_dir / rundir.REPORT_FILE, render_report(summary, records, policy_stats, title or exp_dir.name)
    )
    return summary


def render_report(
    summary: pd.DataFrame, records: pd.DataFrame, policy_stats: dict | None, title: str
) -> str:
    parts = [f"# distlmk population: {title}", ""]
    counts = status_counts(summary)
    parts.append(trials_line(counts))
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
        sig = S.stack_column(rl[S.SIGMA_NEXT])
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


# --- `distlmk analyze` ---------------------------------------------------------------------


def analyze_scaling(root: Path) -> Path:
    """Report for a `distlmk ablate` folder: the scaling table and curves."""
    from distlmk.analysis.scaling import markdown_table

    table = pd.read_parquet(root / rundir.SCALING_TABLE)
    out = root / "analysis"
    out.mkdir(exist_ok=True)
    plots.scaling_curves(table, out / "scaling.png")
    text = [f"# Scaling ablation: {root.name}", "", markdown_table(table), "", "![Scaling](scaling.png)", ""]
    return atomic_write_text(out / rundir.REPORT_FILE, "\n".join(text))


def analyze(exp_dir: str | Path) -> Path:
    exp_dir = Path(exp_dir).resolve()
    if not (exp_dir / rundir.RECORDS_FILE).is_file() and (exp_dir / rundir.SCALING_TABLE).is_file():
        return analyze_scaling(exp_dir)
    records, errors = load_records(exp_dir), load_errors(exp_dir)
    info = rundir.run_info_or_none(exp_dir)
    summary = summarize_trials(records, errors, info.cpu if info else 1.0, info.gpu if info else 0.0)
    out = exp_dir / "analysis"
    out.mkdir(exist_ok=True)
    cfg = rundir.read_search_config(exp_dir, required=False)
    names = rundir.read_landmark_names(exp_dir)
    if records.empty:  # every trial failed before its first result: the status lines are the report
        figs, pred_lines = {}, []
    else:
        figs = {
            "Learning curves": plots.learning_curves(records, out / "learning_curves.png"),
            "Sigma trajectories (rl trials)": plots.sigma_trajectories(
                records, out / "sigma_trajectories.png", names
            ),
            "Method comparison": plots.method_comparison(summary, out / "method_comparison.png"),
            "Central policy training": plots.policy_training(
                rundir.read_policy_history(exp_dir), out / "policy_training.png"
            ),
        }
        from distlmk.analysis.predictions import covariance_figure, prediction_section

        figs["Learned anisotropic targets (1-sigma ellipses, heatmap px)"] = covariance_figure(
            records, out / "sigma_covariances.png", names
        )
        pred_figs, pred_lines = prediction_section(records, summary, cfg, out, plots.COLORS)
        figs.update(pred_figs)
        scaling = exp_dir / rundir.SCALING_TABLE
        if scaling.is_file():
            figs["Scaling"] = plots.scaling_curves(pd.read_parquet(scaling), out / "scaling.png")
    status = status_counts(summary)
    lines = [f"# Analysis: {exp_dir.name}", ""]
    state = "finished" if info else f"still running or interrupted (no {rundir.RUN_INFO} yet)"
    lines.append(f"Experiment {state}. {trials_line(status)}")
    if status.get("running"):
        running = summary.loc[summary["status"] == "running", "trial_id"].tolist()
        lines.append(f"Running (no test metrics yet): {', '.join(running)}.")
    if status.get("error"):
        for r in summary[summary["status"] == "error"].itertuples():
            lines.append(f"- failed trial {r.trial_id}: {r.error}")
    pol = rundir.read_policy_stats(exp_dir) or {}
    if pol:
        lines.append(
            f"Central policy: {pol.get('updates')} PPO updates, {pol.get('decisions')} decisions; "
            f"started from: {pol.get('restored_from') or 'fresh weights'}; frozen: {pol.get('frozen')}."
        )
    elif cfg.get("policy", {}).get("checkpoint"):
        lines.append(f"Central policy started from {cfg['policy']['checkpoint']}.")
    lines += ["", "## Method comparison", "", method_table(summary), ""]
    lines += pred_lines
    for title, path in figs.items():
        if path is not None:
            lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    check = tune_result_check(exp_dir, records) if not records.empty else pd.DataFrame()
    if not check.empty:
        lost = check[check["tune_iterations"] < check["records_iterations"]]
        lines += [
            "## Tune's files vs distlmk's records",
            "",
            f"{len(check)} trial result files; {len(lost)} with fewer iterations than distlmk's records "
            f"(distlmk's {rundir.RECORDS_FILE} is the reference).",
            "",
        ]
    summary.to_csv(out / "summary.csv", index=False)
    report = atomic_write_text(out / rundir.REPORT_FILE, "\n".join(lines))
    return report
