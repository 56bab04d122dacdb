"""`distlmk export DIR/<name> --by val --out MODEL_DIR`: the best trial of a search, for predict.

The trial is chosen on its final VALIDATION MRE (never on test: the test figures exported
alongside stay an unbiased estimate). Among trials that finished (completed, or stopped by
the policy) and kept a checkpoint, the lowest final validation MRE wins; ties go to the
lower trial id. MODEL_DIR gets model.pt + model.json (what `distlmk predict` loads) and
export.json: provenance (experiment, trial id, method, variant, seed, sigma used, the
checkpoint it came from) and the trial's test metrics.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from distlmk import rundir
from distlmk import schema as S
from distlmk.analysis.summary import FINISHED
from distlmk.atomic import atomic_write_json
from distlmk.infer.model import ModelLoadError, latest_checkpoint, load_model_state, save_model


def _jsonable(v):
    """Parquet values (nested object arrays, numpy scalars, NaN) -> JSON-ready Python."""
    if isinstance(v, np.ndarray | list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def export_best(exp_dir: str | Path, out_dir: str | Path, by: str = "val") -> dict:
    from distlmk.analysis.predictions import final_rows
    from distlmk.analysis.summary import load_errors, load_records, summarize_trials

    if by != "val":
        raise ValueError("--by: only 'val' (selection on the test set would bias its figures)")
    exp_dir = Path(exp_dir).resolve()
    saved = rundir.read_search_config(exp_dir, required=False)
    if saved.get("simulation", {}).get("enabled") or saved.get("simulated"):  # (older configs: "simulated")
        raise FileNotFoundError(f"{exp_dir}: a simulated (cost-model) experiment has no network to export")
    records = load_records(exp_dir)
    summary = summarize_trials(records, load_errors(exp_dir))
    finals = {r["trial_id"]: r for r in final_rows(records, summary).to_dict("records")}  # finished trials' last rows
    cands = summary[summary["status"].isin(FINISHED) & summary[S.VAL_MRE].notna()]
    if cands.empty:
        raise FileNotFoundError(f"{exp_dir}: no finished trial with a validation MRE to export")
    ranked = cands.sort_values([S.VAL_MRE, S.TRIAL_ID])
    chosen, ckpt, skipped = None, None, []
    for row in ranked.to_dict("records"):
        d = rundir.trial_path(exp_dir, row.get(S.TRIAL_DIR))  # recorded from Tune's trial, never parsed
        ckpt = latest_checkpoint(d) if d is not None else None
        if ckpt is not None:
            chosen = row
            break
        skipped.append(row["trial_id"])
    if chosen is None:
        raise FileNotFoundError(
            f"{exp_dir}: none of the finished trials has a checkpoint folder with {rundir.CHECKPOINT_FILE} "
            "(a simulated experiment has no network to export; records written before distlmk kept the "
            f"{S.TRIAL_DIR} column do not name the trial folders)"
        )
    try:
        meta, weights, _ = load_model_state(ckpt)
    except ModelLoadError as e:
        raise ModelLoadError(f"trial {chosen['trial_id']}: {e}") from None
    final = finals[chosen["trial_id"]]
    test = {
        k: _jsonable(v)
        for k, v in final.items()
        if k.startswith("test/") and v is not None and not k.endswith(("/errors_mm", "/pred_px"))
    }
    splits = S.test_splits(final)
    test_mre = final.get(S.test_key(splits[0], "mre_mm")) if splits else None
    info = {
        "experiment": str(exp_dir),
        "selected_by": "lowest final validation MRE (mm) among finished trials",
        "trial_id": chosen["trial_id"],
        "method": chosen["method"],
        "variant": chosen["variant"],
        "seed": int(chosen["seed"]),
        "status": chosen["status"],
        "epochs": int(chosen["epochs"]),
        "val_mre_mm": float(chosen[S.VAL_MRE]),
        "test_split": splits[0] if splits else None,
        "test_mre_mm": _jsonable(test_mre),
        "test": test,
        "sigma_used": _jsonable(final.get(S.SIGMA_USED)),
        "sigma_final": _jsonable(final.get(S.SIGMA_NEXT)),
        "sigma_cov": meta.get("sigma_cov"),
        "checkpoint": str(ckpt),
        "skipped_without_checkpoint": skipped,
        "ranking": [
            {"trial_id": r["trial_id"], "variant": r["variant"], "seed": int(r["seed"]),
             "val_mre_mm": float(r[S.VAL_MRE])}
            for r in ranked.to_dict("records")
        ],
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta = dict(meta, exported_from=info["trial_id"])
    out = save_model(meta, weights, out_dir)
    atomic_write_json(out / "export.json", info)
    return info
