"""distlmk.analysis.stats against known values: closed forms, exact enumeration, t quantiles.

Every check compares with a number derived independently of the code under test, so a wrong
resampling scheme (wrong level, independent instead of joint image indices, wrong weighting)
moves the result outside the tolerance."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest

from distlmk.analysis import stats

REPS = 20000


def _enumerate(d: np.ndarray, design: str) -> Counter:
    """The exact bootstrap distribution of mean_s mean_i, by listing every equally likely resample."""
    n_draws, n_img = d.shape
    pmf: Counter = Counter()
    for picks in itertools.product(range(n_draws), repeat=n_draws):
        if design == "crossed":
            for idx in itertools.product(range(n_img), repeat=n_img):
                pmf[round(float(d[np.ix_(picks, idx)].mean()), 9)] += 1
        else:  # a fresh image resample for every pick
            for idx in itertools.product(itertools.product(range(n_img), repeat=n_img), repeat=n_draws):
                pmf[round(float(np.mean([d[p, list(i)].mean() for p, i in zip(picks, idx, strict=True)])), 9)] += 1
    total = sum(pmf.values())
    return Counter({v: c / total for v, c in pmf.items()})


def _pmf_var(pmf: Counter) -> float:
    mean = sum(v * p for v, p in pmf.items())
    return sum(p * (v - mean) ** 2 for v, p in pmf.items())


def _check_against_pmf(boot: np.ndarray, pmf: Counter) -> None:
    seen = Counter(np.round(boot, 9).tolist())
    assert set(seen) <= set(pmf), f"values no resample of this scheme can give: {set(seen) - set(pmf)}"
    for v, p in pmf.items():
        f = seen.get(v, 0) / boot.size
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / boot.size) + 1e-12, (v, f, p)


# --- exact enumeration, tiny designs -------------------------------------------------------
@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_tiny_design_matches_exact_enumeration(design):
    """S=2 draws, N=2 images: every resample listed (nested 4·4·4 = 64, crossed 4·4 = 16).

    The closed form `bootstrap_var` must equal the enumerated variance to 1e-12, and the
    sampled replicates must take only enumerated values at the enumerated frequencies. Fails
    if: images are resampled independently per seed in the crossed case (values such as
    mean(d[0,0], d[1,1]) appear, which joint indices never give) or jointly in the nested case
    (the frequencies shift); draws are not resampled (values like 16 = both picks draw 1 vanish);
    or the closed form drops a term."""
    d = np.array([[0.0, 1.0], [4.0, 16.0]])
    pmf = _enumerate(d, design)
    assert stats.bootstrap_var(d, design) == pytest.approx(_pmf_var(pmf), rel=1e-12)
    _check_against_pmf(stats.bootstrap_means(d, design, REPS, seed=3), pmf)


def test_tiny_designs_differ():
    """The two schemes give different exact variances for the same numbers, so the enumeration
    test above tells them apart: nested 15.8125, crossed 18.453125 for [[0, 1], [4, 16]] (by hand:
    nested ((4.75² + 4.75²)/2 + (0.25/2 + 36/2)/2)/2; crossed a = ±4.75, b = ±3.25, e = ±2.75,
    22.5625/2 + 10.5625/2 + 7.5625/4)."""
    d = np.array([[0.0, 1.0], [4.0, 16.0]])
    assert _pmf_var(_enumerate(d, "nested")) == pytest.approx(15.8125)
    assert _pmf_var(_enumerate(d, "crossed")) == pytest.approx(18.453125)


# --- nested: the closed form, unbalanced ---------------------------------------------------
def test_nested_bootstrap_sd_matches_closed_form():
    """Unbalanced nested draws (N = 8..60), draw effects and within-draw noise of similar weight.

    Var* = (1/S)[(1/S)Σ(m_s - m̄)² + (1/S)Σ v_s/N_s], v_s the plug-in within-draw variance.
    20k replicates estimate the SD to ~0.5 %; tolerance 3 %. Each part alone is < 80 % of the
    total variance (asserted), so a scheme that skips either level, or divides by a common N
    instead of each draw's N_s, misses by more than the tolerance."""
    rng = np.random.default_rng(7)
    sizes = [8, 60, 15, 30, 12, 45]
    d = [rng.normal(rng.normal(0.0, 0.25), 1.0, n) for n in sizes]
    m = np.array([x.mean() for x in d])
    between = m.var() / len(d)
    within = np.mean([x.var() / x.size for x in d]) / len(d)
    expected = between + within
    assert stats.bootstrap_var(d, "nested") == pytest.approx(expected, rel=1e-12)
    assert max(between, within) < 0.8 * expected
    pooled_n = np.mean([x.var() for x in d]) / np.mean(sizes) / len(d)  # one common N
    assert abs(between + pooled_n - expected) > 0.1 * expected
    boot = stats.bootstrap_means(d, "nested", REPS, seed=1)
    assert boot.std() == pytest.approx(math.sqrt(expected), rel=0.03)
    assert boot.mean() == pytest.approx(m.mean(), abs=4 * math.sqrt(expected / REPS))


# --- crossed: shared image effects ---------------------------------------------------------
def _crossed(shared: bool) -> np.ndarray:
    rng = np.random.default_rng(11)
    n_seeds, n_img = 5, 60
    seed_eff = rng.normal(0.0, 0.1, (n_seeds, 1))
    img_eff = rng.normal(0.0, 0.5, (1, n_img)) if shared else 0.0
    return seed_eff + img_eff + rng.normal(0.0, 0.3, (n_seeds, n_img))


def test_crossed_shared_image_effects_need_the_wider_interval():
    """Per-image effects shared by every seed (an image hard for one seed is hard for all).

    Crossed Var* = σ_a²/S + σ_b²/N + σ_e²/(SN) (two-way decomposition); the old scheme, images
    resampled independently within each resampled seed (= "nested"), gives σ_a²/S +
    (σ_b² + σ_e²)/(SN): the shared effect b is divided by S more. Both bootstraps must match
    their closed forms within 3 %, and the crossed SD must be > 1.5x the old one here (about
    2x): if the crossed code drew image indices per seed it would land on the narrow value,
    and the too-narrow interval is what issue 14 is about."""
    d = _crossed(shared=True)
    crossed, old = stats.bootstrap_var(d, "crossed"), stats.bootstrap_var(d, "nested")
    assert math.sqrt(crossed / old) > 1.5
    assert stats.bootstrap_means(d, "crossed", REPS, seed=2).std() == pytest.approx(math.sqrt(crossed), rel=0.03)
    assert stats.bootstrap_means(d, "nested", REPS, seed=2).std() == pytest.approx(math.sqrt(old), rel=0.03)
    ones = {s: np.ones(d.shape[1]) for s in range(d.shape[0])}
    a = {s: row + 1.0 for s, row in enumerate(d)}
    w_crossed = np.diff(stats.paired_delta(a, ones, "crossed", reps=4000)["ci95"])[0]
    w_old = np.diff(stats.paired_delta(a, ones, "nested", reps=4000)["ci95"])[0]
    assert w_crossed > 1.5 * w_old


def test_crossed_without_shared_effects_is_close_to_nested():
    """No per-image effect: seed effects plus independent noise. Then the image term is noise
    either way and the two schemes nearly agree (SD ratio < 1.1, asserted on the closed forms),
    and the crossed bootstrap still matches its closed form within 3 %. Fails if the crossed
    scheme widened every interval regardless of the data (e.g. resampled images jointly
    but also added the per-seed image resampling on top)."""
    d = _crossed(shared=False)
    crossed, nested = stats.bootstrap_var(d, "crossed"), stats.bootstrap_var(d, "nested")
    assert 1.0 <= math.sqrt(crossed / nested) < 1.1
    assert stats.bootstrap_means(d, "crossed", REPS, seed=4).std() == pytest.approx(math.sqrt(crossed), rel=0.03)


# --- t quantile and t-interval -------------------------------------------------------------
@pytest.mark.parametrize("df, expected", [
    (1, math.tan(math.pi * 0.475)),  # Cauchy: exact
    (2, math.sqrt(2 * 0.9025 / 0.0975)),  # df=2: P(|T|<t) = t/sqrt(2+t²) = 0.95; = 4.302652729749464
    (3, 3.1824463052837078), (4, 2.7764451051977934), (9, 2.262157162798205),
    (30, 2.0422724563012378), (1000, 1.9623390808264083),  # scipy 1.17 t.ppf(0.975, df)
])
def test_t_quantile(df, expected):
    """Against closed forms (df 1, 2) and scipy's values; a wrong series (odd/even branch) or
    df off by one misses by far more than 1e-11 relative."""
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, rel=1e-11)


def test_t_quantile_brief_values():
    """The values quoted in issue 14 agree to 1e-9 (its df=2 figure, 4.302652729911275, is
    1.6e-10 above the exact 4.302652729749464)."""
    for df, v in ((1, 12.706204736174707), (2, 4.302652729911275), (4, 2.7764451051977987)):
        assert stats.t_quantile(0.975, df) == pytest.approx(v, rel=1e-9)


def test_t_interval_closed_form():
    """Per-draw means 1, 2, 3 (constant within draw): mean 2, sd 1, n 3, so
    2 ± t_{0.975,2}/√3; five draws 1..5: 3 ± t_{0.975,4}·√2.5/√5."""
    a = {s: np.full(4, float(s)) for s in (1, 2, 3)}
    b = {s: np.zeros(4) for s in (1, 2, 3)}  # zero baseline: delta_pct None
    half = math.sqrt(2 * 0.9025 / 0.0975) / math.sqrt(3)
    out = stats.paired_delta(a, b, "nested", reps=200)
    assert out["ci95_t"] == pytest.approx([2 - half, 2 + half], rel=1e-12) and out["delta_pct"] is None
    half4 = 2.7764451051977934 * math.sqrt(2.5) / math.sqrt(5)
    assert stats.t_interval([1, 2, 3, 4, 5]) == pytest.approx([3 - half4, 3 + half4], rel=1e-12)


def test_single_draw_has_no_t_interval():
    """n = 1: no standard deviation, so null bounds and a note, holds False, and still a
    bootstrap interval over images; the result is strict JSON (no NaN)."""
    rng = np.random.default_rng(0)
    out = stats.paired_delta({0: rng.normal(1, 0.1, 30)}, {0: np.zeros(30) + 2.0}, "nested", reps=500)
    assert out["ci95_t"] == [None, None] and "ci95_t_note" in out
    assert out["holds"] is False and out["sign"] == "none"
    assert out["ci95"][0] < out["delta_mm"] < out["ci95"][1]
    json.dumps(out, allow_nan=False)


# --- the delta: weighting, holds -----------------------------------------------------------
def test_equal_weight_per_draw_and_holds_needs_both_intervals():
    """Draw 1: 4 images, difference 2 each; draw 2: 1 image, difference 1. Equal weight per
    draw gives delta 1.5 (pooling images would give 1.8), baseline mean 1, so +150 %.
    No within-draw spread: the nested bootstrap takes only 1, 1.5, 2, so ci95 = [1, 2] excludes
    0, but the t-interval 1.5 ± 12.706·0.7071/√2 = 1.5 ± 6.353 does not: holds False."""
    a = {1: np.full(4, 3.0), 2: np.array([2.0])}
    b = {1: np.ones(4), 2: np.array([1.0])}
    out = stats.paired_delta(a, b, "nested", reps=2000)
    assert out["delta_mm"] == pytest.approx(1.5)
    assert out["delta_pct"] == pytest.approx(150.0)
    assert out["images"] == [4, 1] and out["draws"] == [1, 2] and out["design"] == "nested"
    assert out["ci95"] == pytest.approx([1.0, 2.0])
    half = 12.706204736174696 * math.sqrt(0.5) / math.sqrt(2)
    assert out["ci95_t"] == pytest.approx([1.5 - half, 1.5 + half], rel=1e-9)
    assert out["holds"] is False and out["sign"] == "none"


def test_holds_when_both_exclude_zero():
    """A clear improvement across 4 draws: both intervals below 0 -> holds, "better"; swapped -> "worse"."""
    rng = np.random.default_rng(5)
    a = {s: rng.normal(1.0, 0.2, 40) for s in range(4)}
    b = {s: a[s] + 0.3 + rng.normal(0, 0.05, 40) for s in range(4)}
    out = stats.paired_delta(a, b, "nested", reps=2000)
    assert out["holds"] is True and out["sign"] == "better"
    assert stats.paired_delta(b, a, "nested", reps=2000)["sign"] == "worse"


@pytest.mark.parametrize("ci95, ci95_t, expected", [
    ([-2, -1], [-3, -0.5], (True, "better")),
    ([1, 2], [0.5, 3], (True, "worse")),
    ([-2, -1], [-3, 0.5], (False, "none")),  # t-interval straddles 0
    ([-2, 0.1], [-3, -1], (False, "none")),  # bootstrap straddles 0
    ([-2, -1], [1, 2], (False, "none")),  # opposite sides
    ([-2, -1], [None, None], (False, "none")),  # one draw
    ([-2, -1], [float("nan"), float("nan")], (False, "none")),
])
def test_verdict(ci95, ci95_t, expected):
    assert stats.verdict(ci95, ci95_t) == expected


def test_reproducible_and_vectorised_shape():
    d = [np.arange(5.0), np.arange(7.0)]
    x = stats.bootstrap_means(d, "nested", 300, seed=9)
    assert x.shape == (300,) and np.array_equal(x, stats.bootstrap_means(d, "nested", 300, seed=9))


# --- design and input errors ---------------------------------------------------------------
def test_infer_design():
    assert stats.infer_design({0: ["a", "b"], 1: ["a", "b"]}) == "crossed"
    assert stats.infer_design({0: ["a", "b"], 1: ["c", "d", "e"]}) == "nested"
    with pytest.raises(ValueError, match="neither"):
        stats.infer_design({0: ["a", "b"], 1: ["b", "c"]})


def test_input_errors():
    with pytest.raises(ValueError, match="no draw in common"):
        stats.paired_delta({0: np.ones(2)}, {1: np.ones(2)}, "nested")
    with pytest.raises(ValueError, match="pairing"):
        stats.paired_delta({0: np.ones(2)}, {0: np.ones(3)}, "nested")
    with pytest.raises(ValueError, match="same images"):
        stats.paired_delta({0: np.ones(2), 1: np.ones(3)}, {0: np.ones(2), 1: np.ones(3)}, "crossed")
    with pytest.raises(ValueError, match="design"):
        stats.paired_delta({0: np.ones(2)}, {0: np.ones(2)}, "pooled")
    with pytest.raises(ValueError, match="non-finite"):
        stats.paired_delta({0: np.array([1.0, np.nan])}, {0: np.ones(2)}, "nested")
