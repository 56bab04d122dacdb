"""Paired test deltas with intervals that match how the test images were drawn (issue 14).

Two designs, named by how per-image test errors relate across held-out draws/seeds:

* ``"nested"``: each held-out draw has its own test images (a new data draw per seed). Images
  are nested in draws, so the bootstrap resamples draws with replacement, then images with
  replacement within each resampled draw.
* ``"crossed"``: every seed scores the same test images. An image that is hard for one seed is
  hard for all, so per-image effects are shared; resampling images independently within each
  seed (the old ``comparison.paired_delta``) averages them away and gives too narrow an
  interval. The crossed bootstrap resamples seeds, and image indices *jointly*: one index
  vector per replicate, used for every seed (Owen's "pigeonhole" bootstrap).

Weighting: every draw counts equally. The point estimate is the mean over draws of the
per-draw mean difference, the bootstrap recomputes exactly that statistic on each resample,
and the t-interval is over the same per-draw means, so the three agree on what is estimated.

Both bootstraps are conservative rather than narrow: resampling at both levels counts the
within-draw (or interaction) noise once in the spread of the draw means and again in the image
resampling. `bootstrap_var` gives the exact bootstrap variance for the data in hand.

numpy only: no scipy (the t quantile is computed here), no Ray, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

DESIGNS = ("nested", "crossed")


# --- the t quantile, without scipy --------------------------------------------------------
def _t_abs_cdf(theta: float, df: int) -> float:
    """P(|T| < sqrt(df)·tan(theta)) for Student's t with integer df (Abramowitz & Stegun 26.7.3/4)."""
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:
        total, term = 0.0, c  # odd: (2/pi)[theta + sin·(cos + (2/3)cos^3 + (2·4)/(3·5)cos^5 + ...)]
        if df > 1:
            total = term
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
        return (2.0 / math.pi) * (theta + s * total)
    total, term = 1.0, 1.0  # even: sin·(1 + (1/2)cos^2 + (1·3)/(2·4)cos^4 + ...)
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The p quantile (p > 0.5) of Student's t with integer df >= 1, by bisection on the exact CDF.

    Exact to ~1e-12 (t_{0.975,2} = 4.302652729911275); no scipy in the analysis layer."""
    if not 0.5 < p < 1.0:
        raise ValueError(f"p must lie in (0.5, 1), got {p}")
    if int(df) != df or df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    df = int(df)
    target = 2.0 * p - 1.0  # P(|T| < t)
    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_abs_cdf(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return math.sqrt(df) * math.tan(0.5 * (lo + hi))


def t_interval(means: Sequence[float], level: float = 0.95) -> list[float | None]:
    """mean ± t_{(1+level)/2, n-1}·sd/√n over per-draw means; [None, None] when n < 2 (no sd)."""
    m = np.asarray(means, float)
    n = m.size
    if n < 2:
        return [None, None]
    half = t_quantile(0.5 + level / 2, n - 1) * float(m.std(ddof=1)) / math.sqrt(n)
    return [float(m.mean() - half), float(m.mean() + half)]


# --- design --------------------------------------------------------------------------------
def infer_design(image_ids: Mapping[Hashable, Sequence[Hashable]]) -> str:
    """"crossed" when every draw lists the same image ids in the same order, "nested" when no
    image appears in two draws; anything in between fits neither bootstrap and raises."""
    ids = [tuple(v) for v in image_ids.values()]
    if not ids:
        raise ValueError("no draws")
    if all(v == ids[0] for v in ids):
        return "crossed"
    seen: set = set()
    for v in ids:
        if seen & set(v):
            raise ValueError("draws share some images but not all (or not in the same order): "
                             "neither nested nor crossed")
        seen |= set(v)
    return "nested"


# --- the bootstrap -------------------------------------------------------------------------
def _as_rows(d: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    rows = [np.asarray(x, float).ravel() for x in d]
    if not rows or any(r.size == 0 for r in rows):
        raise ValueError("need at least one draw, each with at least one image")
    if not all(np.isfinite(r).all() for r in rows):
        raise ValueError("non-finite per-image error")
    return rows


def bootstrap_means(d: Sequence[np.ndarray] | np.ndarray, design: str, reps: int = 2000,
                    seed: int = 0) -> np.ndarray:
    """[reps] bootstrap replicates of mean_s(mean_i d[s][i]) (draws weighted equally).

    nested: pick S draws with replacement; in each pick, N_s images with replacement from that
    draw (a fresh choice per pick). crossed: pick S seeds with replacement and one vector of N
    image indices with replacement, shared by every picked seed. Vectorised over replicates."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    rows = _as_rows(d)
    rng = np.random.default_rng(seed)
    n_draws = len(rows)
    if design == "crossed":
        n_img = rows[0].size
        if any(r.size != n_img for r in rows):
            raise ValueError("crossed design needs the same images (same N) for every seed")
        dm = np.stack(rows)  # [S, N]
        w_s = rng.multinomial(n_draws, np.full(n_draws, 1.0 / n_draws), size=reps)  # [reps, S]
        w_i = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=reps)  # [reps, N]
        return np.einsum("rn,rn->r", w_s @ dm, w_i) / (n_draws * n_img)
    picks = rng.integers(0, n_draws, (reps, n_draws))  # [reps, S]
    pick_means = np.empty((reps, n_draws))
    for s, row in enumerate(rows):  # a loop over draws, not replicates
        where = np.nonzero(picks == s)
        count, n = where[0].size, row.size
        out = np.empty(count)
        step = max(1, (1 << 22) // n)  # bound memory at ~32 MB of indices
        for lo in range(0, count, step):
            k = min(step, count - lo)
            out[lo:lo + k] = row[rng.integers(0, n, (k, n))].mean(axis=1)
        pick_means[where] = out
    return pick_means.mean(axis=1)


def bootstrap_var(d: Sequence[np.ndarray] | np.ndarray, design: str) -> float:
    """The exact variance of `bootstrap_means` (its limit as reps -> inf), for the data in hand.

    nested (m_s, v_s: draw s's mean and plug-in variance (1/N_s)Σ_i(d_si - m_s)²; m̄ = mean_s m_s):
        Var* = (1/S)·[(1/S)Σ_s(m_s - m̄)² + (1/S)Σ_s v_s/N_s]
      (the S picks are iid; one pick's mean has variance Var(m_J) + E[v_J/N_J]).
    crossed (two-way plug-in decomposition d_si = μ + a_s + b_i + e_si, every effect summing to 0):
        Var* = σ_a²/S + σ_b²/N + σ_e²/(SN), σ_a² = (1/S)Σa_s², σ_b² = (1/N)Σb_i², σ_e² = (1/SN)Σe_si²
      (the three parts are uncorrelated because rows and columns of e sum to zero).
    Within-seed-only resampling of crossed data gives the nested value, whose image part is
    (σ_b² + σ_e²)/(SN): the shared image effect b is divided by S·N instead of N."""
    rows = _as_rows(d)
    n_draws = len(rows)
    if design == "nested":
        m = np.array([r.mean() for r in rows])
        within = np.array([r.var() / r.size for r in rows])
        return float((m.var() + within.mean()) / n_draws)
    if design == "crossed":
        dm = np.stack(rows)
        n_img = dm.shape[1]
        mu = dm.mean()
        a = dm.mean(axis=1) - mu
        b = dm.mean(axis=0) - mu
        e = dm - mu - a[:, None] - b[None, :]
        return float((a ** 2).mean() / n_draws + (b ** 2).mean() / n_img + (e ** 2).mean() / (n_draws * n_img))
    raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")


# --- the delta -----------------------------------------------------------------------------
def verdict(ci95: Sequence[float | None], ci95_t: Sequence[float | None]) -> tuple[bool, str]:
    """(holds, sign): holds only when both intervals exclude 0 on the same side; sign "better"
    (both below 0: the first method has the lower error), "worse" (both above) or "none"."""
    bounds = [*ci95, *ci95_t]
    if any(x is None or not math.isfinite(x) for x in bounds):
        return False, "none"
    if max(ci95[1], ci95_t[1]) < 0:
        return True, "better"
    if min(ci95[0], ci95_t[0]) > 0:
        return True, "worse"
    return False, "none"


def paired_delta(a: Mapping[Hashable, np.ndarray], b: Mapping[Hashable, np.ndarray], design: str,
                 reps: int = 2000, seed: int = 0) -> dict:
    """Test error difference a - b (negative: a is better), paired by image within each draw.

    `a`, `b`: draw/seed -> per-image errors [N_s]; draws may differ in N (nested only).
    delta_mm = mean over draws of the per-draw mean difference (draws weighted equally; the
    bootstrap and the t-interval use the same weighting). ci95: percentile bootstrap under
    `design` (see `bootstrap_means`). delta_pct = 100·delta_mm / (mean over draws of b's
    per-draw mean), None if that is 0. ci95_t: t-interval over the per-draw mean differences,
    [None, None] with a note when there is a single draw. holds/sign: see `verdict`."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    draws = sorted(set(a) & set(b))
    if not draws:
        raise ValueError("no draw in common: the two methods were not run on the same held-out draws")
    diffs, base = [], []
    for s in draws:
        x, y = np.asarray(a[s], float).ravel(), np.asarray(b[s], float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"draw {s}: {x.size} images for a, {y.size} for b; pairing needs the same images")
        diffs.append(x - y)
        base.append(float(y.mean()))
    per_draw = np.array([d.mean() for d in _as_rows(diffs)])
    delta = float(per_draw.mean())
    boot = bootstrap_means(diffs, design, reps, seed)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    ci95 = [float(lo), float(hi)]
    ci95_t = t_interval(per_draw)
    holds, sign = verdict(ci95, ci95_t)
    base_mean = float(np.mean(base))
    out = {
        "delta_mm": delta,
        "delta_pct": 100.0 * delta / base_mean if base_mean != 0 else None,  # None: a zero baseline
        "ci95": ci95,
        "ci95_t": ci95_t,
        "draws": [d.item() if isinstance(d, np.generic) else d for d in draws],
        "images": [int(d.size) for d in diffs],
        "per_draw_delta_mm": [float(x) for x in per_draw],
        "design": design,
        "holds": holds,
        "sign": sign,
        "reps": int(reps),
    }
    if ci95_t[0] is None:
        out["ci95_t_note"] = f"{len(draws)} draw: no t-interval (needs >= 2 draws for a standard deviation)"
    return out
