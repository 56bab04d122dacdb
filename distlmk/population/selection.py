"""Choices on validation only: best fixed sigma, each landmark's sigma, best schedule.

Each function sees `validation_view(summary)`: identity, validation metrics and compute,
never a test column, so no choice can depend on the test split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from distlmk import schema as S

VAL_COLUMNS = (S.SEED, S.VARIANT, S.METHOD, S.VAL_MRE, S.VAL_PER_LANDMARK, "sigma/final", S.COST_TRIAL_EPOCHS)


def validation_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The columns a choice may read: identity, validation metrics and compute, no test."""
    return summary[[c for c in VAL_COLUMNS if c in summary.columns]].copy()


def best_by_val(summary: pd.DataFrame, variants: list[str] | None = None) -> str:
    """The variant with the lowest mean final validation MRE over seeds."""
    v = validation_view(summary)
    if variants is not None:
        v = v[v[S.VARIANT].isin(variants)]
    if v.empty:
        raise ValueError("no trials to choose from")
    return str(v.groupby(S.VARIANT)[S.VAL_MRE].mean().idxmin())


def per_landmark_choice(summary: pd.DataFrame, sigma_of: dict[str, float]) -> tuple[list[float], list[str]]:
    """Each landmark's sigma: the grid variant with its lowest mean validation error over seeds.

    sigma_of maps grid variant -> its sigma. Returns (sigma per landmark, chosen variant per landmark)."""
    v = validation_view(summary)
    v = v[v[S.VARIANT].isin(list(sigma_of))]
    names = sorted(sigma_of, key=sigma_of.get)
    per = np.stack([np.mean(S.stack_column(v.loc[v[S.VARIANT] == n, S.VAL_PER_LANDMARK]), axis=0)
                    for n in names])  # [G, L]
    pick = per.argmin(axis=0)
    return [float(sigma_of[names[k]]) for k in pick], [names[k] for k in pick]


