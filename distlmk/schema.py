"""The record schema: every metric distlmk writes, named once (Ray-free, torch-free).

One epoch of one trial is a flat dict whose keys say what each number is:

  identity      trial_id, iteration, method, variant, seed, device, epoch
  train/...     loss, loss_per_landmark [L], images_per_s, epoch_s
  val/...       mre_mm, sdr_2_0 .. sdr_4_0 (percent), per_landmark_mre_mm [L]
  sigma/...     used [L] (this epoch's targets), next [L] (after the controller's decision), cov [L, 3]
  rl/...        reward, ended [L], stopped
  policy/...    latency_ms, failed, latencies_ms
  cost/...      trial_epochs (epochs of compute behind this row: > 1 for packed simulated trials),
                epoch_budget
  test/<split>/ mre_mm, sdr_*, per_landmark_mre_mm [L], errors_mm [N, L], pred_px [N, L, 2]
                (predicted points, original pixels), baseline_mean_mre_mm
                (only in a trial's last record; every test split: "test", or ISBI's "Test1", "Test2")

Records read back from Parquet hold nested lists as object arrays of arrays: `as_array`
decodes one value, `stack_column` a column of them.

Trainers build records with `epoch_record`, trials add `test_metrics`, the driver keeps
`RECORD_PREFIXES` columns, and summaries and reports read the same names from here.
"""

from __future__ import annotations

import math

import numpy as np

SDR_THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)

# identity columns (plain names: they are not measurements)
TRIAL_ID, ITERATION, METHOD, VARIANT, SEED, DEVICE, EPOCH = (
    "trial_id", "iteration", "method", "variant", "seed", "device", "epoch"
)
IDENTITY = (METHOD, VARIANT, SEED, DEVICE, EPOCH)
# the trial's Tune folder, relative to the experiment folder (from Tune's trial object, never parsed
# from folder names; `distlmk.rundir.trial_path` resolves it)
TRIAL_DIR = "trial_dir"

TRAIN_LOSS = "train/loss"
TRAIN_LOSS_PER_LANDMARK = "train/loss_per_landmark"
TRAIN_IMAGES_PER_S = "train/images_per_s"
TRAIN_EPOCH_S = "train/epoch_s"

VAL_MRE = "val/mre_mm"
VAL_PER_LANDMARK = "val/per_landmark_mre_mm"

SIGMA_USED = "sigma/used"
SIGMA_NEXT = "sigma/next"
SIGMA_COV = "sigma/cov"  # learned_anisotropic: [L, 3] (sigma_x >= sigma_y, angle rad of the long axis), after the epoch

RL_REWARD = "rl/reward"
RL_ENDED = "rl/ended"
RL_STOPPED = "rl/stopped"

POLICY_LATENCY_MS = "policy/latency_ms"
POLICY_FAILED = "policy/failed"
POLICY_LATENCIES_MS = "policy/latencies_ms"

COST_TRIAL_EPOCHS = "cost/trial_epochs"
COST_EPOCH_BUDGET = "cost/epoch_budget"  # the trial's epoch budget (a trial at it completed)

# Tune's own bookkeeping columns that the records keep
TUNE_COLUMNS = ("time_this_iter_s", "time_total_s", "timestamp")
RECORD_PREFIXES = ("train/", "val/", "sigma/", "rl/", "policy/", "cost/", "test/", "pbt/")

TUNE_METRIC = VAL_MRE  # what schedulers (ASHA, PBT) and Tune's best-trial logic optimise
TUNE_MODE = "min"


def sdr_name(threshold_mm: float) -> str:
    """2.0 -> 'sdr_2_0' (the last part of an SDR key)."""
    return f"sdr_{threshold_mm:.1f}".replace(".", "_")


SDR_NAMES = tuple(sdr_name(t) for t in SDR_THRESHOLDS_MM)


def val_key(name: str) -> str:
    return f"val/{name}"


def test_key(split: str, name: str) -> str:
    """test_key('Test1', 'mre_mm') -> 'test/Test1/mre_mm'."""
    return f"test/{split}/{name}"


def test_splits(keys) -> list[str]:
    """The test splits present among record keys, in first-seen order."""
    out: list[str] = []
    for k in keys:
        parts = str(k).split("/")
        if len(parts) == 3 and parts[0] == "test" and parts[1] not in out:
            out.append(parts[1])
    return out


def metric_block(prefix: str, summary: dict) -> dict:
    """`train.metrics.summarize`-style dict -> flat keys under `prefix` ('val' or 'test/<split>')."""
    out = {f"{prefix}/mre_mm": summary["mre_mm"], f"{prefix}/per_landmark_mre_mm": summary["per_landmark_mre_mm"]}
    for t in SDR_THRESHOLDS_MM:
        out[f"{prefix}/{sdr_name(t)}"] = summary["sdr"][f"{t:.1f}"]
    for extra in ("errors_mm", "pred_px", "baseline_mean_mre_mm"):
        if summary.get(extra) is not None:
            out[f"{prefix}/{extra}"] = summary[extra]
    return out


def flatten_test_metrics(per_split: dict) -> dict:
    """{split: summary} of every test split -> one flat dict of `metric_block`s under `test/<split>`."""
    return {k: v for split, m in per_split.items() for k, v in metric_block(f"test/{split}", m).items()}


def is_record_column(key: str) -> bool:
    return key in IDENTITY or key in TUNE_COLUMNS or key.startswith(RECORD_PREFIXES)


def as_array(value, dtype=float) -> np.ndarray | None:
    """One nested-list value read back from Parquet ([L], [L, 3], [N, L, 2]: object arrays of
    arrays, or lists) -> a regular ndarray; None when missing (None, NaN). Ragged values raise
    ValueError."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _nested(value, dtype)


def _nested(value, dtype) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.astype(dtype, copy=False)
    if isinstance(value, list | tuple | np.ndarray):
        parts = [_nested(v, dtype) for v in value]
        return np.stack(parts) if parts else np.empty(0, dtype)
    return np.asarray(value, dtype)


def stack_column(values, dtype=float) -> np.ndarray:
    """A column of equal-shape nested values (a Series or any iterable) -> one array [rows, ...]."""
    return np.stack([as_array(v, dtype) for v in values])
