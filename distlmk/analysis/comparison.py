"""The arena's statistics: each role's held-out result, paired deltas with two intervals, the JSON and Markdown.

Reads the typed stages (`distlmk.stages`) and their summaries (one row per trial, `distlmk.schema`
names); never imports Ray or torch. Every choice was made before, on validation
(`population.selection`); the test split's per-image errors are read here, once per write, and every
read is journalled (`rundir.TEST_READS`) (stage, time, git commit, the figures read).

Delta = method − baseline in test MRE (mm); negative: the method is better. Held-out draws are
distinct data, so images are nested in draws: the bootstrap resamples draws, then images within each
(`stats.paired_delta`, design "nested"), and a t-interval over the per-draw means is given beside it.
A claim holds only where both intervals exclude 0.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import rundir
from distlmk import schema as S
from distlmk.analysis.stats import paired_delta, t_interval
from distlmk.stages import POPULATION_ROLES, Role, StageKind, StageSpec

#: the baselines every adaptive method is compared with (rl_vs, landmark_pbt_vs)
BASELINES = (Role.BEST_FIXED, Role.PER_LANDMARK_STATIC, Role.PBT, Role.PB2, Role.RANDOM, Role.LANDMARK_PBT,
             Role.LEARNED, Role.LEARNED_ANISOTROPIC, Role.ADALOSS, Role.RL)


@dataclass
class CompareRun:
    """What `distlmk.compare.Arena.run` hands over: the typed stages and what they produced."""

    root: Path
    config: dict  # CompareConfig as a dict
    choices: dict[int, dict]  # held-out draw -> the grid's choices on that draw's validation split
    policy: str | None  # the frozen policy's checkpoint (None: no rl)
    stages: list[StageSpec]
    summaries: dict[str, pd.DataFrame]  # stage name -> one row per trial
    policy_stats: dict[str, dict]  # stage name -> its policy server's final stats ({} without one)
    elapsed_s: float
    stages_elapsed_s: float


# --- each role's final model per draw --------------------------------------------------------
def best_member(summary: pd.DataFrame, variant: str, draw: int) -> pd.Series:
    """The trial of `variant` on `draw` with the lowest final validation MRE (a population's pick)."""
    rows = summary[(summary[S.VARIANT] == variant) & (summary[S.SEED] == draw)]
    if rows.empty:
        raise ValueError(f"no trial of {variant!r} on draw {draw}")
    return rows.loc[rows[S.VAL_MRE].idxmin()]


def per_image_errors(row: pd.Series, split: str) -> np.ndarray:
    """[N] one trial's per-image test MRE (the mean over landmarks of errors_mm)."""
    return S.as_array(row[S.test_key(split, "errors_mm")]).mean(axis=1)


def _stage_of(run: CompareRun, role: Role, kind: StageKind, draw: int) -> StageSpec:
    for st in run.stages:
        if st.kind is kind and role in st.roles and draw in st.draws:
            return st
    raise KeyError(f"no {kind} stage holds {role} on draw {draw}")


def role_results(run: CompareRun) -> tuple[str, dict[Role, dict]]:
    """(test split, per role and held-out draw: the chosen trial's test errors, val MRE and the compute
    behind it)."""
    held = [st for st in run.stages if st.kind is not StageKind.GENERATION]
    draws = sorted(run.choices)
    split = S.test_splits(pd.concat([run.summaries[st.name] for st in held]).columns)[0]
    policy_epochs = sum(_trial_epochs(run.summaries[st.name]) for st in run.stages if st.kind is StageKind.GENERATION)
    grid = run.summaries[next(st.name for st in held if st.kind is StageKind.GRID)]
    roles = {r for st in held for r in st.roles}
    out: dict[Role, dict] = {}
    for role in sorted(roles, key=list(Role).index):
        per = {"errors": {}, "val": {}, "epochs_used": {}, "trial_epochs": {}, "choice": {}}
        for d in draws:
            grid_cost = _trial_epochs(grid[(grid[S.SEED] == d) & (grid[S.METHOD] == "fixed")
                                           & grid[S.VARIANT].str.startswith("fixed σ=")])
            if role is Role.BEST_FIXED:
                stage_df, variant, cost = grid, run.choices[d]["best_fixed"], grid_cost
            else:
                kind = StageKind.GRID if role is Role.RANDOM else (
                    StageKind.POPULATION if role in POPULATION_ROLES else StageKind.RETRAIN)
                stage_df, variant = run.summaries[_stage_of(run, role, kind, d).name], str(role)
                members = stage_df[(stage_df[S.VARIANT] == variant) & (stage_df[S.SEED] == d)]
                cost = _trial_epochs(members) + (grid_cost if role is Role.PER_LANDMARK_STATIC else 0) + (
                    policy_epochs if role is Role.RL else 0)
            row = best_member(stage_df, variant, d)
            per["errors"][d] = per_image_errors(row, split)
            per["val"][d] = float(row[S.VAL_MRE])
            per["epochs_used"][d] = float(row["epochs"])
            per["trial_epochs"][d] = int(cost)
            per["choice"][d] = variant
        out[role] = per
    return split, out


def _trial_epochs(summary: pd.DataFrame) -> int:
    return int(summary[S.COST_TRIAL_EPOCHS].sum())


# --- the comparison's JSON -----------------------------------------------------------------
def learning_curve(run: CompareRun) -> list[dict]:
    """Per generation: the rl populations' validation MRE on the training draws and what the learner saw."""
    curve = []
    gens = sorted({st.generation for st in run.stages if st.kind is StageKind.GENERATION})
    for g in gens:
        stages = [st for st in run.stages if st.kind is StageKind.GENERATION and st.generation == g]
        s = pd.concat([run.summaries[st.name] for st in stages], ignore_index=True)
        stats = run.policy_stats[stages[-1].name]
        first = run.policy_stats[stages[0].name]
        losses = stats.get("losses") or {}
        curve.append({
            "generation": g, "draws": [d for st in stages for d in st.draws],
            "rl_val_mre_mm": float(s[S.VAL_MRE].mean()),
            "rl_best_member_val_mre_mm": float(s.groupby(S.SEED)[S.VAL_MRE].min().mean()),
            "rl_val_mre_mm_per_trial": s[S.VAL_MRE].round(4).tolist(),
            "mean_epochs": float(s["epochs"].mean()), "trial_epochs": _trial_epochs(s),
            "mean_trial_return": float(s["rl/total_reward"].mean()) if "rl/total_reward" in s else None,
            "policy_updates": stats.get("updates"),
            "policy_updates_this_generation": sum(run.policy_stats[st.name].get("updates_this_run", 0) or 0
                                                  for st in stages),
            "transitions": stats.get("env_steps"),
            "vf_explained_var": _num(losses.get("vf_explained_var")),
            "policy_started_from": first.get("restored_from"),
        })
    return curve


def _num(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def pick_agreement(choices: dict[int, dict]) -> dict:
    """How often two held-out draws' validation splits pick the same grid sigma for a landmark."""
    pairs = {f"{a}-{b}": float(np.mean([x == y for x, y in zip(choices[a]["per_landmark_pick"],
                                                                 choices[b]["per_landmark_pick"], strict=True)]))
             for a, b in combinations(sorted(choices), 2)}
    return {"pairs": pairs, "mean": float(np.mean(list(pairs.values()))) if pairs else None}


def build_comparison(run: CompareRun, reps: int = 2000) -> dict:
    """The comparison's JSON: per role the test MRE per draw, compute, headroom and deltas with both intervals."""
    split, res = role_results(run)
    draws = sorted(run.choices)
    methods = {}
    for role, per in res.items():
        means = [float(per["errors"][d].mean()) for d in draws]
        methods[str(role)] = {
            "test_mre_mm": means, "draws": draws, "mean": float(np.mean(means)),
            "ci95_t": t_interval(np.asarray(means)),
            "val_mre_mm": float(np.mean([per["val"][d] for d in draws])),
            "epochs_used": float(np.mean([per["epochs_used"][d] for d in draws])),
            "trial_epochs_per_draw": [per["trial_epochs"][d] for d in draws],
            "trial_epochs_total": float(np.mean([per["trial_epochs"][d] for d in draws])),
        }
    methods[str(Role.BEST_FIXED)]["chosen"] = [run.choices[d]["best_fixed"] for d in draws]

    def deltas(of: Role) -> dict:
        if of not in res:
            return {}
        return {str(b): paired_delta(res[of]["errors"], res[b]["errors"], design="nested", reps=reps)
                for b in BASELINES if b in res and b is not of}

    head = paired_delta(res[Role.PER_LANDMARK_STATIC]["errors"], res[Role.BEST_FIXED]["errors"],
                        design="nested", reps=reps)
    gens = sum(_trial_epochs(run.summaries[st.name]) for st in run.stages if st.kind is StageKind.GENERATION)
    return {
        "name": run.config["name"],
        "commit": _commit(),
        "config": run.config,
        "test_split": split,
        "heldout_draws": draws,
        "train_draws": run.config["train_draws"],
        "seed_varies": "both",
        "population_size": run.config["population_size"],
        "methods": methods,
        "best_fixed_by_val": {str(d): run.choices[d]["best_fixed"] for d in draws},
        "per_landmark_sigma": {str(d): run.choices[d]["per_landmark_sigma"] for d in draws},
        "pick_agreement": pick_agreement(run.choices),
        "headroom": {"strategy": str(Role.PER_LANDMARK_STATIC), **head, "goal_pct": -5.0,
                     "met": bool(head["delta_pct"] <= -5.0 and head["ci95"][1] < 0
                                 and head["ci95_t"][1] is not None and head["ci95_t"][1] < 0)},
        "rl_vs": deltas(Role.RL),
        "landmark_pbt_vs": deltas(Role.LANDMARK_PBT),
        "learning_curve": learning_curve(run),
        "policy": run.policy,
        "policy_training_trial_epochs": gens,
        "compute": "trial_epochs_total: trial-epochs behind a method's final model on one held-out draw, "
                   "mean over draws: grid members for best_fixed_by_val, grid + retrain for per_landmark_static, "
                   "all N members for populations, and for rl its N members plus every generation that trained "
                   "the policy, counted in full for each draw (not amortised)",
        "elapsed_s": run.elapsed_s,
        "stages_elapsed_s": run.stages_elapsed_s,
        "delta": "method - baseline in test MRE (mm); negative: the method is better. ci95: bootstrap "
                 f"({reps} resamples) over held-out draws, then test images within each; ci95_t: t-interval over "
                 "the per-draw mean differences; holds: both exclude 0",
    }


# --- the one read of the test split, journalled --------------------------------------------
def _commit() -> str:
    """HEAD's commit, with "+dirty" when the package's code or settings (`distlmk/`, `pyproject.toml`)
    differ from it: the run's code is not that commit."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if not head.stdout.strip():
            return "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "distlmk", "pyproject.toml"],
                               cwd=here.parent.parent, capture_output=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def journal_test_reads(run: CompareRun, c: dict) -> list[dict]:
    """Append one line per held-out stage read to the test-read journal; returns the earlier reads of stages
    that ran again since (a rerun after a read: reported beside the earlier figure)."""
    path = run.root / rundir.TEST_READS
    earlier = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    now, commit, lines, reruns = time.time(), _commit(), [], []
    for st in run.stages:
        if not st.evaluates_test:
            continue
        info = rundir.read_run_info(run.root / st.name)
        figures = {str(r): c["methods"][str(r)]["mean"] for r in st.roles if str(r) in c["methods"]}
        line = {"stage": st.name, "time": now, "commit": commit, "stage_started_at": info.started_at,
                "figures": figures}
        reruns += [{**e, "now": figures} for e in earlier
                   if e["stage"] == st.name and e["stage_started_at"] != info.started_at]
        lines.append(line)
    with path.open("a") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    return reruns


# --- the Markdown report ---------------------------------------------------------------------
def _ci(d: dict) -> str:
    t = d["ci95_t"]
    tt = "n/a" if t[0] is None else f"[{t[0]:+.3f}, {t[1]:+.3f}]"
    return (f"{d['delta_mm']:+.3f} mm ({d['delta_pct']:+.1f} %), bootstrap [{d['ci95'][0]:+.3f}, "
            f"{d['ci95'][1]:+.3f}], t {tt}: **{d['sign'] if d['holds'] else 'no claim'}**")


def render_markdown(c: dict, reruns: list[dict]) -> str:
    lines = [f"# Comparison: {c['name']}", "",
             f"Held-out draws {c['heldout_draws']} (each its own images and network; the policy trained on draws "
             f"{c['train_draws']}), test split `{c['test_split']}` read once at the end (`{rundir.TEST_READS}`); every "
             f"choice on the draw's own validation split; populations of N = {c['population_size']}. Wall time "
             f"{c['elapsed_s'] / 60:.1f} min (this invocation); the stages' own times add up to "
             f"{(c.get('stages_elapsed_s') or 0) / 60:.1f} min.", "",
             f"Best fixed sigma per draw (validation): {c['best_fixed_by_val']}. Per-landmark picks agree between "
             f"draws on {100 * (c['pick_agreement']['mean'] or 0):.0f} % of landmarks.", "",
             "## Held-out test MRE", "",
             "| method | test MRE mm (mean) | t 95 % CI | per draw | val MRE mm | epochs used | trial-epochs per draw |",
             "|---|---|---|---|---|---|---|"]
    for v, m in sorted(c["methods"].items(), key=lambda kv: kv[1]["mean"]):
        lo, hi = m["ci95_t"]
        ci = "n/a" if lo is None else f"[{lo:.3f}, {hi:.3f}]"
        lines.append(f"| {v} | {m['mean']:.3f} | {ci} | {', '.join(f'{x:.3f}' for x in m['test_mre_mm'])} | "
                     f"{m['val_mre_mm']:.3f} | {m['epochs_used']:.1f} | {m['trial_epochs_total']:.0f} |")
    h = c["headroom"]
    lines += ["", c["compute"] + ".", "", "![accuracy against compute](cost.png)", "",
              "## Headroom (non-RL baselines alone)", "",
              f"{h['strategy']} − best_fixed_by_val: {_ci(h)}; goal ≤ −5 % with both intervals below 0: "
              f"**{'met' if h['met'] else 'not met'}**.", ""]
    for who in ("rl", "landmark_pbt"):
        vs = c.get(f"{who}_vs") or {}
        if vs:
            lines += [f"## {who} against each baseline", "", f"| baseline | Δ = {who} − baseline |", "|---|---|"]
            lines += [f"| {b} | {_ci(d)} |" for b, d in vs.items()] + [""]
    if reruns:
        lines += ["## Stages rerun after their test split was read", "",
                  "| stage | read at | commit | figures then | figures now |", "|---|---|---|---|---|"]
        lines += [f"| {r['stage']} | {time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['time']))} | {r['commit'][:10]} | "
                  f"{r['figures']} | {r['now']} |" for r in reruns] + [""]
    lines += ["## Policy learning curve (training draws, validation)", "",
              "| generation | rl val MRE mm (all members) | best member | mean epochs | mean trial return | "
              "updates (cumulative) | transitions (cumulative) | vf explained var |", "|---|---|---|---|---|---|---|---|"]
    for p in c["learning_curve"]:
        ret = "n/a" if p["mean_trial_return"] is None else f"{p['mean_trial_return']:.2f}"
        vf = "n/a" if p["vf_explained_var"] is None else f"{p['vf_explained_var']:.2f}"
        lines.append(f"| {p['generation']} | {p['rl_val_mre_mm']:.3f} | {p['rl_best_member_val_mre_mm']:.3f} | "
                     f"{p['mean_epochs']:.1f} | {ret} | {p['policy_updates']} | {p['transitions']} | {vf} |")
    lines += ["", c["delta"], "", "![learning curve](learning_curve.png)", "", "![held-out deltas](heldout_deltas.png)",
              ""]
    return "\n".join(lines)


def write_comparison(run: CompareRun) -> Path:
    """The comparison's JSON and Markdown, the plots and the test-read journal, under its folder."""
    from distlmk.analysis import plots
    from distlmk.atomic import atomic_write_json, atomic_write_text

    run.root.mkdir(parents=True, exist_ok=True)
    (run.root / "stages.json").write_text(json.dumps([st.to_dict() for st in run.stages], indent=1))
    c = build_comparison(run, run.config.get("bootstrap_reps", 2000))
    reruns = journal_test_reads(run, c)
    c["reruns_after_test_read"] = reruns
    atomic_write_json(run.root / rundir.COMPARISON_JSON, c)
    plots.comparison_learning_curve(c, run.root / "learning_curve.png")
    plots.comparison_deltas(c, run.root / "heldout_deltas.png")
    plots.comparison_cost(c, run.root / "cost.png")
    atomic_write_text(run.root / rundir.COMPARISON_MD, render_markdown(c, reruns))
    return run.root / rundir.COMPARISON_MD


def headline(c: dict) -> str:
    """Three lines a user reads first: headroom, rl against the grid, rl against the best baseline."""
    h = c["headroom"]
    lines = [f"[{c['name']}] held-out draws {c['heldout_draws']}, test MRE: "
             + ", ".join(f"{v} {m['mean']:.3f}" for v, m in sorted(c["methods"].items(), key=lambda kv: kv[1]["mean"])),
             f"headroom ({h['strategy']} vs best fixed σ by validation): {_ci(h)}"]
    if c.get("rl_vs"):
        best = min((b for b in c["rl_vs"]), key=lambda b: c["methods"][b]["mean"])
        lines.append(f"rl vs best fixed σ: {_ci(c['rl_vs']['best_fixed_by_val'])}; rl vs {best} (best baseline): "
                     f"{_ci(c['rl_vs'][best])}")
    return "\n".join(lines)
