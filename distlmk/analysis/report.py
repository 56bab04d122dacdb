"""`distlmk analyze DIR`: plots + a Markdown report of a (running, finished or failed) experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from distlmk.analysis import plots
from distlmk.analysis.summary import load_errors, load_records, method_table, summarize_trials
from distlmk.atomic import atomic_write_text


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


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


def analyze_scaling(root: Path) -> Path:
    """Report for a `distlmk ablate` folder: the scaling table and curves."""
    from distlmk.analysis.scaling import markdown_table

    table = pd.read_parquet(root / "scaling.parquet")
    out = root / "analysis"
    out.mkdir(exist_ok=True)
    plots.scaling_curves(table, out / "scaling.png")
    text = [f"# Scaling ablation: {root.name}", "", markdown_table(table), "", "![Scaling](scaling.png)", ""]
    return atomic_write_text(out / "report.md", "\n".join(text))


def analyze(exp_dir: str | Path) -> Path:
    exp_dir = Path(exp_dir).resolve()
    if not (exp_dir / "records.parquet").is_file() and (exp_dir / "scaling.parquet").is_file():
        return analyze_scaling(exp_dir)
    records, errors = load_records(exp_dir), load_errors(exp_dir)
    info = _read_json(exp_dir / "run_info.json") or {}
    res = info.get("resources_per_trial", {})
    summary = summarize_trials(records, errors, res.get("cpu", 1.0), res.get("gpu", 0.0))
    out = exp_dir / "analysis"
    out.mkdir(exist_ok=True)
    cfg = _read_json(exp_dir / "search_config.json") or {}
    names = None
    if (exp_dir / "landmark_names.json").is_file():
        names = _read_json(exp_dir / "landmark_names.json")
    if records.empty:  # every trial failed before its first result: the status lines are the report
        lines = _status_lines(exp_dir, summary, info, cfg)
        lines += ["", "## Method comparison", "", method_table(summary), ""]
        summary.to_csv(out / "summary.csv", index=False)
        return atomic_write_text(out / "report.md", "\n".join(lines))
    figs = {
        "Learning curves": plots.learning_curves(records, out / "learning_curves.png"),
        "Sigma trajectories (rl trials)": plots.sigma_trajectories(
            records, out / "sigma_trajectories.png", names
        ),
        "Method comparison": plots.method_comparison(summary, out / "method_comparison.png"),
        "Central policy training": plots.policy_training(
            _read_json(exp_dir / "policy_history.json") or [], out / "policy_training.png"
        ),
    }
    from distlmk.analysis.predictions import covariance_figure, prediction_section

    figs["Learned anisotropic targets (1-sigma ellipses, heatmap px)"] = covariance_figure(
        records, out / "sigma_covariances.png", names
    )
    pred_figs, pred_lines = prediction_section(records, summary, cfg, out, plots.COLORS)
    figs.update(pred_figs)
    scaling = exp_dir / "scaling.parquet"
    if scaling.is_file():
        figs["Scaling"] = plots.scaling_curves(pd.read_parquet(scaling), out / "scaling.png")
    lines = _status_lines(exp_dir, summary, info, cfg)
    lines += ["", "## Method comparison", "", method_table(summary), ""]
    lines += pred_lines
    for title, path in figs.items():
        if path is not None:
            lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    check = tune_result_check(exp_dir, records)
    if not check.empty:
        lost = check[check["tune_iterations"] < check["records_iterations"]]
        lines += [
            "## Tune's files vs distlmk's records",
            "",
            f"{len(check)} trial result files; {len(lost)} with fewer iterations than distlmk's records "
            "(distlmk's records.parquet is the reference).",
            "",
        ]
    summary.to_csv(out / "summary.csv", index=False)
    report = atomic_write_text(out / "report.md", "\n".join(lines))
    return report


def _status_lines(exp_dir: Path, summary: pd.DataFrame, info: dict, cfg: dict) -> list[str]:
    """The report's head: finished or not, trials by status, failures, the central policy."""
    status = summary["status"].value_counts().to_dict() if "status" in summary else {}
    lines = [f"# Analysis: {exp_dir.name}", ""]
    state = "finished" if info else "still running or interrupted (no run_info.json yet)"
    lines.append(
        f"Experiment {state}. Trials: "
        + ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
        + "."
    )
    if status.get("running"):
        running = summary.loc[summary["status"] == "running", "trial_id"].tolist()
        lines.append(f"Running (no test metrics yet): {', '.join(running)}.")
    if status.get("error"):
        for r in summary[summary["status"] == "error"].itertuples():
            lines.append(f"- failed trial {r.trial_id}: {r.error}")
    pol = _read_json(exp_dir / "policy_stats.json") or {}
    if pol:
        lines.append(
            f"Central policy: {pol.get('updates')} PPO updates, {pol.get('decisions')} decisions; "
            f"started from: {pol.get('restored_from') or 'fresh weights'}; frozen: {pol.get('frozen')}."
        )
    elif cfg.get("policy", {}).get("checkpoint"):
        lines.append(f"Central policy started from {cfg['policy']['checkpoint']}.")
    return lines
