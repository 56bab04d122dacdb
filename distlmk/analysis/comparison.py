"""The honest comparison's statistics: paired test deltas with CIs, its JSON and Markdown files.

Reads summaries (one row per trial, `distlmk.schema` names); never imports Ray or torch.
Every choice was made before, on validation (`population.selection`); the test split's
per-image errors are read here once, after every choice is made.

Delta = method A - method B in test MRE (mm); negative: A is better. Its 95 % CI is a
two-level bootstrap: seeds resampled with replacement, then test images within each
resampled seed, pairing A and B by (seed, image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import rundir
from distlmk import schema as S


def per_image_errors(summary: pd.DataFrame, variant: str, split: str) -> dict[int, np.ndarray]:
    """seed -> per-image MRE [N] on the test split (the mean over landmarks of errors_mm).

    With several trials of a variant and seed (replicas, a PBT population), the one with the
    lowest final validation MRE stands for that seed."""
    key = S.test_key(split, "errors_mm")
    rows = summary[(summary[S.VARIANT] == variant) & summary[key].notna()]
    out = {}
    for seed, g in rows.groupby(S.SEED):
        best = g.loc[g[S.VAL_MRE].idxmin()]
        out[int(seed)] = S.as_array(best[key]).mean(axis=1)
    return out


def paired_delta(a: dict[int, np.ndarray], b: dict[int, np.ndarray], reps: int = 2000,
                 seed: int = 0) -> dict:
    """Mean test MRE difference a - b over shared seeds and images, with a 95 % bootstrap CI."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("no seed in common: the two methods were not run on the same held-out seeds")
    diffs = [a[s] - b[s] for s in seeds]  # [N] per seed, paired by image
    if any(len(d) != len(diffs[0]) for d in diffs):
        raise ValueError("different test images per seed")
    d = np.stack(diffs)  # [S, N]
    rng = np.random.default_rng(seed)
    n_seeds, n_img = d.shape
    si = rng.integers(0, n_seeds, (reps, n_seeds))
    ii = rng.integers(0, n_img, (reps, n_seeds, n_img))
    boot = d[si[..., None], ii].mean(axis=(1, 2))
    base = float(np.mean([b[s].mean() for s in seeds]))
    delta = float(d.mean())
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"delta_mm": delta, "ci95": [float(lo), float(hi)], "delta_pct": 100.0 * delta / base,
            "seeds": seeds, "images": int(n_img)}


# --- the report ------------------------------------------------------------------------
RL_BASELINES = ("best_fixed_by_val", "per_landmark_static", "schedule", "learned", "learned_anisotropic", "adaloss",
                "pbt")


def heldout_summary(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every held-out trial (stages heldout*, pbt_s*) in one frame."""
    parts = [s for name, s in summaries.items() if name.startswith(("heldout", "pbt_s"))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def build_comparison(result: dict, reps: int = 2000) -> dict:
    """The comparison's JSON: held-out test MRE per method and seed, headroom and rl deltas with CIs."""
    held = heldout_summary(result["summaries"])
    cfg = result["config"]
    split = S.test_splits(held.columns)[0]
    choice = result["choice"]
    selection_cost = _selection_cost(result)
    methods = {}
    errors = {}
    for variant, g in held.groupby(S.VARIANT, sort=True):
        errors[variant] = per_image_errors(held, variant, split)
        per_seed = {s: float(e.mean()) for s, e in sorted(errors[variant].items())}
        val = g.groupby(S.SEED)[S.VAL_MRE].min()
        methods[variant] = {
            "test_mre_mm": list(per_seed.values()), "seeds": list(per_seed), "mean": float(np.mean(list(per_seed.values()))),
            "val_mre_mm": float(val.mean()), "epochs_used": float(g["epochs"].mean()),
            "heldout_trial_epochs": int(g[S.COST_TRIAL_EPOCHS].sum()),
            "selection_trial_epochs": selection_cost.get(variant, 0),
            "trial_epochs": int(g[S.COST_TRIAL_EPOCHS].sum()) + selection_cost.get(variant, 0),
            "test_sdr_2_0": float(g.groupby(S.SEED)[S.test_key(split, "sdr_2_0")].mean().mean()),
        }
    # headroom: the better (on validation) of the two non-RL per-landmark/curriculum strategies
    candidates = [v for v in ("per_landmark_static", "schedule") if v in methods]
    strategy = min(candidates, key=lambda v: methods[v]["val_mre_mm"])
    head = paired_delta(errors[strategy], errors["best_fixed_by_val"], reps)
    rl_vs = {b: paired_delta(errors["rl"], errors[b], reps) for b in RL_BASELINES if b in errors}
    extra = {}
    for variant in ("rl_stop", "rl_cold"):
        if variant in errors:
            extra[variant] = {b: paired_delta(errors[variant], errors[b], reps)
                              for b in ("rl", "best_fixed_by_val", "per_landmark_static") if b in errors}
    # the held-out run of the grid's choice is listed under its own name ("fixed σ=2.5"), which
    # best_fixed_by_val names; rl_vs and headroom are keyed by the baseline's role
    methods[choice["best_fixed"]] = {**methods.pop("best_fixed_by_val"), "role": "best_fixed_by_val"}
    return {
        "name": cfg["name"],
        "test_split": split,
        "heldout_seeds": cfg["heldout_seeds"],
        "train_seeds": cfg["train_seeds"],
        "methods": methods,
        "best_fixed_by_val": choice["best_fixed"],
        "best_fixed_sigma": choice["best_fixed_sigma"],
        "per_landmark_sigma": choice["per_landmark_sigma"],
        "schedule_by_val": choice["schedule"],
        "headroom": {"strategy": strategy, **head, "goal_pct": -5.0,
                     "met": bool(head["ci95"][1] < 0 and head["delta_pct"] <= -5.0)},
        "rl_vs": rl_vs,
        "rl_variants_vs": extra,
        "learning_curve": result["learning_curve"],
        "learning_curve_cold": result.get("learning_curve_cold"),
        "elapsed_s": result["elapsed_s"],
        "stages_elapsed_s": result.get("stages_elapsed_s"),
        "delta": "method - baseline in test MRE (mm); negative: the first method is better. 95 % CI: "
                 f"bootstrap ({reps} resamples) over held-out seeds and, within each, test images",
    }


def _selection_cost(result: dict) -> dict[str, int]:
    """Trial-epochs spent choosing each held-out variant's settings (grid, generations)."""
    s = result["summaries"]
    grid = s["grid"]
    fixed = grid[grid[S.METHOD] == "fixed"][S.COST_TRIAL_EPOCHS].sum()
    sched = grid[grid[S.METHOD] == "schedule"][S.COST_TRIAL_EPOCHS].sum()
    gens = sum(v[S.COST_TRIAL_EPOCHS].sum() for k, v in s.items() if k.startswith("gen"))
    cold = sum(v[S.COST_TRIAL_EPOCHS].sum() for k, v in s.items() if k.startswith("cold"))
    return {"best_fixed_by_val": int(fixed), "per_landmark_static": int(fixed), "schedule": int(sched),
            "rl": int(fixed + gens), "rl_stop": int(fixed + gens), "rl_cold": int(fixed + cold)}


def role_method(c: dict, role: str) -> dict:
    """The methods entry of a baseline role (best_fixed_by_val is listed under its sigma's name)."""
    return c["methods"][c["best_fixed_by_val"] if role == "best_fixed_by_val" else role]


def _ci(d: dict) -> str:
    return f"{d['delta_mm']:+.3f} mm ({d['delta_pct']:+.1f} %), 95 % CI [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def render_markdown(c: dict) -> str:
    lines = [f"# Comparison: {c['name']}", "",
             f"Held-out seeds {c['heldout_seeds']} (training seeds {c['train_seeds']}), test split `{c['test_split']}`"
             f" read once at the end; every choice on validation. Wall time {c['elapsed_s'] / 60:.1f} min "
             f"(this invocation); the stages' own times add up to {(c.get('stages_elapsed_s') or 0) / 60:.1f} min.", "",
             f"Best fixed sigma on validation: **{c['best_fixed_by_val']}**; per-landmark sigma on validation: "
             f"{[round(x, 2) for x in c['per_landmark_sigma']]}; schedule on validation: {c['schedule_by_val']}.", "",
             "## Held-out test MRE", "",
             "| variant | test MRE mm (mean) | per seed | val MRE mm | SDR 2 mm % | epochs used | trial-epochs (selection + held-out) |",
             "|---|---|---|---|---|---|---|"]
    for v, m in sorted(c["methods"].items(), key=lambda kv: kv[1]["mean"]):
        lines.append(f"| {v} | {m['mean']:.3f} | {', '.join(f'{x:.3f}' for x in m['test_mre_mm'])} | "
                     f"{m['val_mre_mm']:.3f} | {m['test_sdr_2_0']:.1f} | {m['epochs_used']:.1f} | "
                     f"{m['selection_trial_epochs']} + {m['heldout_trial_epochs']} = {m['trial_epochs']} |")
    h = c["headroom"]
    lines += ["", "## Headroom (non-RL baselines alone)", "",
              f"{h['strategy']} − best_fixed_by_val: {_ci(h)}; goal ≤ −5 % with the CI below 0: "
              f"**{'met' if h['met'] else 'not met'}**.", "", "## rl (frozen policy) against each baseline", "",
              "| baseline | Δ = rl − baseline |", "|---|---|"]
    lines += [f"| {b} | {_ci(d)} |" for b, d in c["rl_vs"].items()]
    for variant, deltas in (c.get("rl_variants_vs") or {}).items():
        lines += ["", f"{variant}: " + "; ".join(f"vs {b} {_ci(d)}" for b, d in deltas.items())]
    lines += ["", "## Policy learning curve (training seeds, validation)", "",
              "| generation | rl val MRE mm | mean epochs | mean trial return | policy updates (cumulative) |",
              "|---|---|---|---|---|"]
    for curve, label in ((c["learning_curve"], ""), (c.get("learning_curve_cold") or [], " (cold start)")):
        lines += [f"| {p['generation']}{label} | {p['rl_val_mre_mm']:.3f} | {p['mean_epochs']:.1f} | "
                  f"{p['mean_trial_return']:.2f} | {p['policy_updates']} |" for p in curve]
    lines += ["", c["delta"], "", "![learning curve](learning_curve.png)", "", "![held-out deltas](heldout_deltas.png)",
              "", "![accuracy against compute](cost.png)", "", "![rl sigma](rl_sigma.png)", ""]
    return "\n".join(lines)


def write_comparison(result: dict) -> Path:
    """The comparison's JSON, Markdown and plots, under the comparison's folder."""
    from distlmk.analysis import plots
    from distlmk.atomic import atomic_write_json, atomic_write_text

    root = Path(result["root"])
    c = build_comparison(result, result["config"].get("bootstrap_reps", 2000))
    atomic_write_json(root / rundir.COMPARISON_JSON, c)
    plots.comparison_learning_curve(c, root / "learning_curve.png")
    plots.comparison_deltas(c, root / "heldout_deltas.png")
    plots.comparison_cost(c, root / "cost.png")
    records = pd.read_parquet(root / "heldout" / rundir.RECORDS_FILE) if "heldout" in result["summaries"] else None
    plots.comparison_rl_sigma(pd.DataFrame() if records is None else records, c["per_landmark_sigma"],
                              root / "rl_sigma.png")
    text = render_markdown(c) + "\n".join(heldout_pictures(root, result["summaries"].get("heldout"), records)) + "\n"
    atomic_write_text(root / rundir.COMPARISON_MD, text)
    return root / rundir.COMPARISON_MD


def heldout_pictures(root: Path, summary: pd.DataFrame | None, records: pd.DataFrame | None) -> list[str]:
    """Per-landmark table, CED curves and best/median/worst overlays of the held-out methods
    (`summary`, `records`: the heldout stage's, None without one)."""
    from distlmk.analysis import plots
    from distlmk.analysis.predictions import prediction_section

    held = root / "heldout"
    if summary is None or records is None:
        return []
    cfg = rundir.read_search_config(held)
    figs, lines = prediction_section(records, summary, cfg, root, plots.COLORS)
    for title, path in figs.items():
        lines += [f"## {title}", "", f"![{title}]({Path(path).name})", ""]
    return lines


def headline(c: dict) -> str:
    """Three lines a user reads first: headroom, rl against the grid, rl against the best baseline."""
    h = c["headroom"]
    best_base = min((b for b in c["rl_vs"]), key=lambda b: role_method(c, b)["mean"])
    return "\n".join([
        f"[{c['name']}] held-out seeds {c['heldout_seeds']}, test MRE: "
        + ", ".join(f"{v} {m['mean']:.3f}" for v, m in sorted(c["methods"].items(), key=lambda kv: kv[1]["mean"])),
        f"headroom ({h['strategy']} vs best fixed σ by validation): {_ci(h)}",
        f"rl vs best fixed σ: {_ci(c['rl_vs']['best_fixed_by_val'])}; rl vs {best_base} (best baseline): "
        f"{_ci(c['rl_vs'][best_base])}",
    ])
