"""Matplotlib figures of a population experiment (each function writes one PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from distlmk import schema as S  # noqa: E402
from distlmk.analysis.summary import FINISHED  # noqa: E402

COLORS = {"fixed": "tab:blue", "learned": "tab:orange", "learned_anisotropic": "tab:brown", "adaloss": "tab:green",
          "rl": "tab:red"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(records: pd.DataFrame, path: Path) -> Path:
    """Validation MRE per epoch: mean over seeds per method variant, shaded min-max."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    variants = sorted(records["variant"].dropna().unique())
    styles = ["-", "--", ":", "-."]
    for i, variant in enumerate(variants):
        g = records[records["variant"] == variant]
        curve = g.groupby("epoch")[S.VAL_MRE].agg(["mean", "min", "max"]).sort_index()
        method = g["method"].iloc[0]
        ax.plot(
            curve.index,
            curve["mean"],
            styles[i % len(styles)],
            color=COLORS.get(method),
            label=variant,
        )
        ax.fill_between(
            curve.index, curve["min"], curve["max"], color=COLORS.get(method), alpha=0.12
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MRE (mm, log scale)")
    ax.set_title("Learning curves (mean over seeds, band = min–max)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="method", fontsize=8)
    return _save(fig, path)


def sigma_trajectories(
    records: pd.DataFrame, path: Path, names: list[str] | None = None, max_trials: int = 4
) -> Path | None:
    """Landmark x epoch heat maps of the sigma the rl trials trained with."""
    rl = records[records["method"] == "rl"]
    trials = sorted(rl["trial_id"].unique())[:max_trials]
    if not trials:
        return None
    fig, axes = plt.subplots(1, len(trials), figsize=(3.6 * len(trials) + 1, 5.2), squeeze=False)
    vmin, vmax = np.inf, -np.inf
    mats = []
    for tid in trials:
        g = rl[rl["trial_id"] == tid].sort_values("epoch")
        m = S.stack_column(g[S.SIGMA_USED]).T  # [L, epochs]
        mats.append((tid, g["epoch"].to_numpy(), m, g["seed"].iloc[0]))
        vmin, vmax = min(vmin, m.min()), max(vmax, m.max())
    im = None
    for ax, (tid, epochs, m, seed) in zip(axes[0], mats, strict=True):
        im = ax.imshow(
            m,
            aspect="auto",
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            origin="upper",
            extent=(epochs[0] - 0.5, epochs[-1] + 0.5, m.shape[0] - 0.5, -0.5),
        )
        ax.set_xlabel("epoch")
        ax.set_title(f"rl trial {tid[-5:]} (seed {seed})", fontsize=9)
        ax.set_yticks(range(m.shape[0]))
        labels = (
            names if names and len(names) == m.shape[0] else [str(k) for k in range(m.shape[0])]
        )
        ax.set_yticklabels(labels if ax is axes[0][0] else [], fontsize=6)
    axes[0][0].set_ylabel("landmark")
    fig.colorbar(im, ax=axes[0].tolist(), label="sigma (heatmap px)")
    fig.suptitle("Per-landmark sigma chosen by the central policy")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def method_comparison(summary: pd.DataFrame, path: Path) -> Path | None:
    """Box + strip plots of final test MRE and SDR 2 mm (first test split) per variant over seeds."""
    splits = S.test_splits(summary.columns)
    if not splits:
        return None
    mre, sdr2 = S.test_key(splits[0], "mre_mm"), S.test_key(splits[0], "sdr_2_0")
    done = summary[summary["status"].isin(FINISHED)].dropna(subset=[mre])
    if done.empty:
        return None
    variants = sorted(done["variant"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    rng = np.random.default_rng(0)
    for ax, col, label in (
        (axes[0], mre, f"{splits[0]} MRE (mm)"),
        (axes[1], sdr2, f"{splits[0]} SDR 2 mm (%)"),
    ):
        data = [done.loc[done["variant"] == v, col].to_numpy() for v in variants]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(variants) + 1), variants)
        for i, (v, d) in enumerate(zip(variants, data, strict=True), 1):
            method = done.loc[done["variant"] == v, "method"].iloc[0]
            ax.scatter(
                i + rng.uniform(-0.12, 0.12, len(d)), d, color=COLORS.get(method), zorder=3, s=22
            )
        ax.set_ylabel(label)
        ax.set_xlabel("method")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Method comparison (one dot per seed)")
    return _save(fig, path)


def policy_training(history: list[dict], path: Path) -> Path | None:
    """The central policy's mean returns and PPO losses over its updates."""
    if not history:
        return None
    h = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for col, label in (
        ("mean_trial_return", "trial row"),
        ("mean_landmark_return", "landmark rows"),
    ):
        if col in h:
            axes[0].plot(h["update"], h[col], marker=".", label=label)
    axes[0].set_xlabel("PPO update")
    axes[0].set_ylabel("mean episode return")
    axes[0].set_title("Reward")
    axes[0].legend()
    for col in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss"):
        if col in h:
            axes[1].plot(h["update"], h[col], label=col)
    axes[1].set_xlabel("PPO update")
    axes[1].set_ylabel("value")
    axes[1].set_title("PPO losses")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)


def scaling_curves(rows: pd.DataFrame, path: Path) -> Path | None:
    """Trial-epochs per hour vs population size, with the ideal (linear) line from the smallest run."""
    if rows.empty:
        return None
    rows = rows.sort_values("trials")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    base = rows.iloc[0]
    ideal = base["trial_epochs_per_hour"] * rows["trials"] / base["trials"]
    axes[0].plot(rows["trials"], rows["trial_epochs_per_hour"], "o-", label="measured")
    axes[0].plot(rows["trials"], ideal, "k--", label="ideal (linear from smallest)")
    axes[0].set_xscale("log", base=2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("trials in the population")
    axes[0].set_ylabel("trial-epochs per hour")
    axes[0].set_title("Throughput")
    axes[0].legend()
    axes[1].plot(
        rows["trials"], rows["policy_p99_ms"], "o-", color="tab:red", label="p99 decision latency"
    )
    axes[1].plot(
        rows["trials"],
        rows["policy_p50_ms"],
        "s-",
        color="tab:orange",
        label="p50 decision latency",
    )
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("trials in the population")
    axes[1].set_ylabel("ms")
    axes[1].set_title("Central policy load")
    axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def comparison_learning_curve(c: dict, path: Path) -> Path:
    """The policy's generations: rl validation MRE (dots per trial) against the grid's choices."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for curve, label, color in ((c["learning_curve"], "rl (warm start)", "tab:red"),
                                (c.get("learning_curve_cold") or [], "rl (cold start)", "tab:purple")):
        if not curve:
            continue
        g = [p["generation"] for p in curve]
        ax.plot(g, [p["rl_val_mre_mm"] for p in curve], "o-", color=color, label=label)
        for p in curve:
            ax.scatter([p["generation"]] * len(p["rl_val_mre_mm_per_trial"]), p["rl_val_mre_mm_per_trial"],
                       color=color, alpha=0.35, s=12)
    for v, style in ((c["best_fixed_by_val"], "--"), ("per_landmark_static", ":")):
        if v in c["methods"]:
            ax.axhline(c["methods"][v]["val_mre_mm"], ls=style, color="gray", label=f"{v} (held-out val)")
    ax.set_xlabel("generation (wave of rl trials on the training seeds)")
    ax.set_ylabel("final validation MRE (mm)")
    ax.set_title("Central policy across generations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def comparison_deltas(c: dict, path: Path) -> Path:
    """Held-out paired deltas with 95 % CIs: headroom, then rl against each baseline."""
    rows = [(f"headroom: {c['headroom']['strategy']} − best fixed", c["headroom"])]
    rows += [(f"rl − {b}", d) for b, d in c["rl_vs"].items()]
    for variant, deltas in (c.get("rl_variants_vs") or {}).items():
        rows += [(f"{variant} − {b}", d) for b, d in deltas.items()]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, (_, d) in zip(y, rows, strict=True):
        lo, hi = d["ci95"]
        color = "tab:green" if hi < 0 else ("tab:red" if lo > 0 else "tab:gray")
        ax.errorbar(d["delta_mm"], yi, xerr=[[d["delta_mm"] - lo], [hi - d["delta_mm"]]], fmt="o", color=color,
                    capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("Δ test MRE (mm), held-out seeds; negative = first is better")
    ax.set_title("Paired differences with 95 % bootstrap CIs")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def comparison_rl_sigma(records: pd.DataFrame, per_landmark: list[float], path: Path) -> Path | None:
    """Mean rl sigma per landmark over epochs (held-out trials) beside the per-landmark-static sigma."""
    rl = records[records[S.VARIANT] == "rl"] if S.VARIANT in records else records.iloc[:0]
    if rl.empty:
        return None
    traj = rl.groupby(S.EPOCH)[S.SIGMA_USED].apply(lambda s: np.mean(S.stack_column(s), axis=0))
    m = np.stack(traj.to_numpy())  # [epochs, L]
    n = m.shape[1]
    cols = int(np.ceil(np.sqrt(n)))
    rows_ = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(2.2 * cols, 1.8 * rows_), sharex=True, squeeze=False)
    for k in range(rows_ * cols):
        ax = axes[k // cols][k % cols]
        if k >= n:
            ax.axis("off")
            continue
        ax.plot(traj.index, m[:, k], color="tab:red")
        ax.axhline(per_landmark[k], color="gray", ls=":")
        ax.set_title(f"landmark {k}", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("rl sigma by epoch (red, mean of held-out trials) vs per-landmark static sigma (dotted)")
    return _save(fig, path)


def comparison_cost(c: dict, path: Path) -> Path:
    """Held-out test MRE against compute (trial-epochs incl. the grid or generations behind a choice)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for v, m in c["methods"].items():
        color = "tab:red" if v.startswith("rl") else "tab:blue"
        ax.scatter(m["trial_epochs"], m["mean"], color=color, zorder=3)
        ax.annotate(f"{v} ({m['epochs_used']:.1f} ep)", (m["trial_epochs"], m["mean"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("trial-epochs spent (selection + held-out runs)")
    ax.set_ylabel("held-out test MRE (mm)")
    ax.set_title("Accuracy against compute (epochs used per held-out trial in brackets)")
    ax.grid(alpha=0.3)
    return _save(fig, path)
