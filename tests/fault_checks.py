"""Independent evidence about an experiment folder, for the fault tests: Tune's own per-trial
files (error.txt, checkpoints), the trials' restore markers and the trainers' own histories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import rundir
from distlmk import schema as S
from distlmk.rundir import CHECKPOINT_FILE, RESTORES_FILE
from distlmk.train.checkpoint import load_checkpoint

# what must agree row by row between records.parquet and the trainer's own history
COMPARED = (S.EPOCH, S.VAL_MRE, S.TRAIN_LOSS, S.SIGMA_USED, S.SIGMA_NEXT)


def trial_dirs(exp: Path) -> dict[str, Path]:
    """trial id -> the trial's folder, as the records (and the ended trials' status) name it."""
    out = {}
    for name in (rundir.RECORDS_FILE, rundir.STATUS_FILE):
        table = pd.read_parquet(exp / name) if (exp / name).is_file() else pd.DataFrame()
        if S.TRIAL_DIR in table:
            for tid, d in zip(table[S.TRIAL_ID], table[S.TRIAL_DIR], strict=True):
                path = rundir.trial_path(exp, d)
                if path is not None:
                    out[tid] = path
    return out


def last_checkpoint_history(trial_dir: Path) -> list[dict]:
    ckpts = sorted(trial_dir.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))
    assert ckpts, f"{trial_dir}: no checkpoint"
    return load_checkpoint(ckpts[-1] / CHECKPOINT_FILE)["history"]


def restores(exp: Path) -> dict[str, list[dict]]:
    """trial id -> its restore markers (one per start from a checkpoint)."""
    out: dict[str, list[dict]] = {}
    for tid, d in trial_dirs(exp).items():
        f = d / RESTORES_FILE
        if f.is_file():
            out[tid] = [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()]
    return out


def error_texts(exp: Path) -> dict[str, str]:
    """trial id -> Tune's error.txt (every failure of the trial, retried or not)."""
    return {tid: (d / "error.txt").read_text() for tid, d in trial_dirs(exp).items() if (d / "error.txt").is_file()}


def trial_index(exp: Path) -> dict[str, int]:
    """trial id -> its index in the trial grid (params.json)."""
    return {tid: int(json.loads((d / "params.json").read_text())["trial"]["index"])
            for tid, d in trial_dirs(exp).items()}


def assert_records_match_checkpoints(exp: Path, expect_epochs: int | None = None) -> pd.DataFrame:
    """Every (trial, epoch) of records.parquet equals the trial's own history in its last
    checkpoint: nothing lost, nothing duplicated, nothing from another attempt left behind."""
    rec = pd.read_parquet(exp / rundir.RECORDS_FILE)
    assert not rec.duplicated(["trial_id", "iteration"]).any()
    dirs = trial_dirs(exp)
    assert set(rec["trial_id"]) <= set(dirs), "records of a trial Tune does not know"
    for tid, g in rec.sort_values("iteration").groupby("trial_id"):
        hist = last_checkpoint_history(dirs[tid])
        assert len(g) == len(hist), f"{tid}: {len(g)} records, {len(hist)} epochs in its checkpoint"
        assert list(g["iteration"]) == list(range(1, len(g) + 1)), f"{tid}: gap in iterations"
        for (_, row), h in zip(g.iterrows(), hist, strict=True):
            for col in COMPARED:
                np.testing.assert_allclose(np.asarray(row[col], float), np.asarray(h[col], float),
                                           err_msg=f"{tid} epoch {h[S.EPOCH]}: {col}")
        if expect_epochs is not None:
            assert hist[-1][S.EPOCH] == expect_epochs or hist[-1][S.RL_STOPPED], tid
    return rec


def assert_pbt_identity(exp: Path, launched_seeds: list[int]) -> pd.DataFrame:
    """After PBT exploits a trial keeps its own identity (method, variant, seed: the grid point it
    was launched as) and trial id, and its records name the donor (pbt/donor, pbt/exploits)."""
    import re

    rec = pd.read_parquet(exp / rundir.RECORDS_FILE).sort_values(S.ITERATION)
    ident = rec.groupby(S.TRIAL_ID)[[S.METHOD, S.VARIANT, S.SEED]].nunique()
    assert (ident == 1).all().all(), ident
    assert sorted(rec.groupby(S.TRIAL_ID)[S.SEED].first()) == sorted(launched_seeds)
    # independent source of the launched identity: Tune names a trial's folder once, at creation
    for tid, d in trial_dirs(exp).items():
        launched_seed = int(re.search(r"seed_(\d+)", d.name).group(1))
        assert set(rec.loc[rec[S.TRIAL_ID] == tid, S.SEED]) == {launched_seed}, (tid, d.name)
    assert "pbt/donor" in rec, "records do not carry the PBT lineage"
    exploited = rec[rec["pbt/donor"].notna()]
    assert len(exploited) > 0, "no record names a PBT donor"
    assert set(exploited["pbt/donor"]) <= set(rec[S.TRIAL_ID])
    assert (exploited["pbt/donor"] != exploited[S.TRIAL_ID]).all()
    assert (exploited["pbt/exploits"] >= 1).all()
    return rec


def assert_pbt_sigma_follows_config(exp: Path, base: float | None = None, lo: float | None = None,
                                    hi: float | None = None) -> None:
    """Every epoch of a PBT/PB2 member trained with the sigma its config of that epoch names (Tune's
    result.json): base x scale x landmark factor, clipped to [lo, hi], before and after an exploit.
    base, lo, hi default to the trial's own plan (sigma.per_landmark or init; sigma.min, sigma.max)."""
    rec = pd.read_parquet(exp / rundir.RECORDS_FILE).set_index([S.TRIAL_ID, S.ITERATION])
    checked = 0
    for tid, d in trial_dirs(exp).items():
        for line in (d / "result.json").read_text().splitlines():
            r = json.loads(line)
            cfg, used = r["config"], rec.loc[(tid, r["training_iteration"]), S.SIGMA_USED]
            sigma = cfg["trial"]["experiment"]["sigma"]
            b = np.asarray(sigma["per_landmark"] or sigma["init"]) if base is None else base
            factors = np.array([cfg[f"sigma_factor_{k}"] for k in range(len(used))])
            want = np.clip(b * cfg["sigma_scale"] * factors, sigma["min"] if lo is None else lo,
                           sigma["max"] if hi is None else hi)
            np.testing.assert_allclose(used, want, rtol=1e-5)
            checked += bool(cfg.get("pbt"))
    assert checked > 0, "no exploited epoch was compared"
