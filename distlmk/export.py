"""`distlmk export DIR/<name> --by val --out MODEL_DIR`: the best trial of a search, for predict.

The trial is chosen on its final VALIDATION MRE (never on test: the test figures exported
alongside stay an unbiased estimate). Among trials that finished (completed, or stopped by
the policy) and kept a checkpoint, the lowest final validation MRE wins; ties go to the
lower trial id. MODEL_DIR gets model.pt + model.json (what `distlmk predict` loads) and
export.json: provenance (experiment, trial id, method, variant, seed, sigma used, the
checkpoint it came from) and the trial's test metrics.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from distlmk import schema as S
from distlmk.analysis.summary import FINISHED
from distlmk.atomic import atomic_write_json
from distlmk.infer.model import ModelLoadError, latest_checkpoint, load_model_state, save_model


def trial_dirs(exp_dir: Path) -> dict[str, Path]:
    """trial id -> Tune trial folder (from each folder's result.json, else its name)."""
    out = {}
    for d in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
        res = d / "result.json"
        tid = None
        if res.is_file():
            for line in res.read_text().splitlines():
                if line.strip():
                    tid = json.loads(line).get("trial_id") or tid
                    break
        if tid is None and (d / "params.json").is_file():
            parts = d.name.split("_")  # <trainable>_<trial id: xxxxx_NNNNN>_<index>_...
            for i in range(len(parts) - 1):
                if len(parts[i]) == 5 and parts[i + 1].isdigit() and len(parts[i + 1]) == 5:
                    tid = f"{parts[i]}_{parts[i + 1]}"
                    break
        if tid:
            out[tid] = d
    return out


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
    search_cfg = exp_dir / "search_config.json"
    saved = json.loads(search_cfg.read_text()) if search_cfg.is_file() else {}
    if saved.get("simulation", {}).get("enabled") or saved.get("simulated"):  # (older configs: "simulated")
        raise FileNotFoundError(f"{exp_dir}: a simulated (cost-model) experiment has no network to export")
    records = load_records(exp_dir)
    summary = summarize_trials(records, load_errors(exp_dir))
    finals = {r["trial_id"]: r for r in final_rows(records, summary).to_dict("records")}  # finished trials' last rows
    cands = summary[summary["status"].isin(FINISHED) & summary[S.VAL_MRE].notna()]
    if cands.empty:
        raise FileNotFoundError(f"{exp_dir}: no finished trial with a validation MRE to export")
    dirs = trial_dirs(exp_dir)
    ranked = cands.sort_values([S.VAL_MRE, S.TRIAL_ID])
    chosen, ckpt, skipped = None, None, []
    for row in ranked.to_dict("records"):
        d = dirs.get(row["trial_id"])
        ckpt = latest_checkpoint(d) if d is not None else None
        if ckpt is not None:
            chosen = row
            break
        skipped.append(row["trial_id"])
    if chosen is None:
        raise FileNotFoundError(
            f"{exp_dir}: none of the finished trials has a checkpoint folder with trainer.pt "
            "(a simulated experiment has no network to export)"
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
