"""`--resume` after a killed driver: every unfinished trial continues from its own newest checkpoint.

A trial persists a checkpoint every epoch, but Tune snapshots its experiment state only every
`experiment_snapshot_s`; a driver killed in between leaves trial folders newer than the snapshot,
and `Tuner.restore` would give each trial the checkpoint its snapshot names: an older one, none
(the trial starts over) or one that `num_to_keep` has deleted since. `AdoptTrialCheckpoints`
runs once, at the first step of the restored run, before any trial starts. For each unfinished
trial it registers with the trial's checkpoint manager, oldest first, the checkpoints in the
trial's folder that are newer (by the epoch stored inside) than Tune's, as Tune does for a
reported checkpoint (`Trial.on_checkpoint`), with `training_iteration` = their epoch. Tune then
restores the trial from the newest, whose trainer checkpoint must load, and continues the trial's
iterations from its epoch; the trial writes its restore marker as on any restore. The trial's
checkpoint index moves past every `checkpoint_*` folder on disk, so later checkpoints never
overwrite one. A result whose checkpoint was persisted but which never reached the records
journal (the kill fell between the two) is recorded from the metrics file beside the trainer checkpoint (`rundir.METRICS_FILE`).

Uses Tune 2.58 internals (`Trial.on_checkpoint`, `_TrainingResult`, `StorageContext`'s
checkpoint index); `tests/test_faults.py::test_killed_driver_then_resume_continues_every_trial`
guards them.
"""

from __future__ import annotations

import json
import logging
import re

import pyarrow.fs as pafs
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial

from distlmk import schema as S
from distlmk.population.records import RecordsCallback
from distlmk.rundir import CHECKPOINT_FILE, METRICS_FILE
from distlmk.train.checkpoint import load_checkpoint

log = logging.getLogger("distlmk.resume")
_CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)$")


class AdoptTrialCheckpoints(tune.Callback):
    """At the first step of a run: unfinished trials adopt their newer on-disk checkpoints."""

    def __init__(self, records: RecordsCallback):
        self.records = records  # fills in results that never reached the journal
        self._checked = False

    def setup(self, **info) -> None:
        self._checked = False

    def on_step_begin(self, iteration, trials, **info) -> None:
        if self._checked:
            return
        self._checked = True
        for trial in trials:
            if trial.status in (Trial.PENDING, Trial.PAUSED):
                adopt_newer_checkpoints(trial, self.records)


def adopt_newer_checkpoints(trial, records: RecordsCallback | None = None) -> int | None:
    """Register the trial's checkpoints newer than Tune's; the epoch Tune will restore it from
    (None: nothing newer). Its checkpoint index moves past every folder on disk either way."""
    storage = trial.storage
    if storage is None or storage.trial_dir_name is None:
        return None
    fs, trial_path = storage.storage_filesystem, storage.trial_fs_path
    folders = _checkpoint_folders(fs, trial_path)
    if not folders:
        return None
    latest = trial.latest_checkpoint_result
    known = int(latest.metrics.get(S.EPOCH, latest.metrics.get("training_iteration", 0))) if latest else 0
    # PBT: only checkpoints of the lineage Tune's config describes (not those before an exploit)
    lineage = int(trial.config.get("pbt", {}).get("exploits", 0))
    newer: dict[int, tuple[int, str, dict]] = {}  # epoch -> (index, path, metrics); the highest index wins
    for index, path in folders:
        metrics = _read_json(fs, f"{path}/{METRICS_FILE}")
        if metrics is None or S.EPOCH not in metrics or int(metrics.get("pbt/exploits", 0)) != lineage:
            continue
        if int(metrics[S.EPOCH]) > known:
            newer[int(metrics[S.EPOCH])] = (index, path, metrics)
    chain = [newer[e] for e in sorted(newer)]
    while chain and not _complete(fs, chain[-1][1], int(chain[-1][2][S.EPOCH])):
        chain.pop()  # torn by the kill: restore from the one before
    if chain:
        _forget_deleted(trial.run_metadata.checkpoint_manager, fs)
    previous = dict(latest.metrics) if latest else {}
    for _index, path, metrics in chain:
        epoch = int(metrics[S.EPOCH])
        result = {**_tune_columns(records, trial.trial_id, epoch, previous, fs, path), **metrics,
                  "training_iteration": epoch, "trial_id": trial.trial_id, "done": False,
                  "checkpoint_dir_name": path.rsplit("/", 1)[-1]}
        trial.on_checkpoint(_TrainingResult(checkpoint=tune.Checkpoint(path, filesystem=fs), metrics=result))
        if records is not None and (trial.trial_id, epoch) not in records.rows:
            records.on_trial_result(iteration=0, trials=[], trial=trial, result=result)
        previous = result
    storage.current_checkpoint_index = max(storage.current_checkpoint_index, folders[-1][0])
    trial.invalidate_json_state()
    if not chain:
        return None
    log.info("%s: restores from its own checkpoint at epoch %d (Tune's snapshot had epoch %d)",
             trial.trial_id, int(chain[-1][2][S.EPOCH]), known)
    return int(chain[-1][2][S.EPOCH])


def _checkpoint_folders(fs: pafs.FileSystem, trial_path: str) -> list[tuple[int, str]]:
    """(index, path) of the trial's checkpoint_* folders, by index."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
    except OSError:
        return []
    out = []
    for info in infos:
        m = _CHECKPOINT_DIR.match(info.base_name)
        if m and info.type == pafs.FileType.Directory:
            out.append((int(m.group(1)), info.path))
    return sorted(out)


def _forget_deleted(manager, fs: pafs.FileSystem) -> None:
    """Drop from Tune's bookkeeping the snapshot's checkpoints that `num_to_keep` deleted after the
    snapshot: Tune would try to delete them again on the next registration, and fail."""
    manager._checkpoint_results = [
        r for r in manager._checkpoint_results
        if fs.get_file_info(r.checkpoint.path).type != pafs.FileType.NotFound
    ]


def _read_json(fs: pafs.FileSystem, path: str) -> dict | None:
    try:
        with fs.open_input_stream(path) as f:
            value = json.loads(f.readall())
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def _complete(fs: pafs.FileSystem, path: str, epoch: int) -> bool:
    """The trainer's state loads and ends at the epoch its result names."""
    try:
        with tune.Checkpoint(path, filesystem=fs).as_directory() as d:
            history = load_checkpoint(f"{d}/{CHECKPOINT_FILE}")["history"]
        return bool(history) and int(history[-1][S.EPOCH]) == epoch
    except Exception:  # a torn or unreadable file: not a checkpoint to resume from
        return False


def _tune_columns(records: RecordsCallback | None, trial_id: str, epoch: int, previous: dict,
                  fs: pafs.FileSystem, path: str) -> dict:
    """What Tune added to the result when it was reported (time columns): from its journalled
    row; for a result that never reached the journal, the previous one's total and the file's time."""
    row = records.rows.get((trial_id, epoch)) if records is not None else None
    if row is not None:
        return {k: row[k] for k in S.TUNE_COLUMNS if row.get(k) is not None}
    out = {k: previous[k] for k in ("time_total_s",) if previous.get(k) is not None}
    try:
        mtime = fs.get_file_info(f"{path}/{METRICS_FILE}").mtime
        if mtime is not None:
            out["timestamp"] = int(mtime.timestamp())
    except OSError:
        pass
    return out
