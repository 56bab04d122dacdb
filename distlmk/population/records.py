"""distlmk's own per-iteration records, kept by the driver, written atomically as Parquet.

Every result is first appended to a journal (`rundir.JOURNAL_FILE`, one flushed line per
result), so a driver killed between two Parquet writes loses nothing it was told; the journal
is folded into the records (`rundir.RECORDS_FILE`) periodically and at the end, then emptied.

Why not only Tune's files: progress.csv fixes its columns at the first report and
result.json has lost rows after PBT pause/resume. Here every reported result becomes one
row keyed by (trial_id, iteration); a retried or exploited trial that reports an
iteration again replaces the row, so there are never duplicates. On `Tuner.restore`
the callback reloads what was written before and carries on. Each row (and each ended
trial) carries the trial's folder (`schema.TRIAL_DIR`, relative to the experiment folder,
from Tune's trial object), so nothing parses Tune's folder names.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from ray import tune

from distlmk import schema as S
from distlmk.atomic import atomic_write
from distlmk.rundir import JOURNAL_FILE, RECORDS_FILE, STATUS_FILE


def record_from_result(trial_id: str, result: dict, trial_dir: str | None = None) -> dict:
    """One records row: the schema's columns of a Tune result (see `distlmk.schema`)."""
    row = {S.TRIAL_ID: trial_id, S.ITERATION: int(result["training_iteration"])}
    if trial_dir:
        row[S.TRIAL_DIR] = trial_dir
    row.update({k: v for k, v in result.items() if isinstance(k, str) and S.is_record_column(k)})
    return row


def write_parquet(rows: list[dict], path: Path) -> Path:
    # rows differ in keys (test metrics only in a trial's last row): every key becomes a column
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = (
        pa.Table.from_pydict({k: [row.get(k) for row in rows] for k in columns})
        if rows else pa.table({"trial_id": pa.array([], pa.string())})
    )
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist() if path.is_file() else []


class RecordsCallback(tune.Callback):
    """Collects every trial result into the records (deduplicated, atomic, resumable)."""

    def __init__(self, experiment_dir: str, flush_every_s: float = 5.0):
        self.dir = Path(experiment_dir)
        self.flush_every_s = flush_every_s
        self.rows: dict[tuple[str, int], dict] = {}
        self.ended: dict[str, dict] = {}  # trial id -> how it ended (terminated / error + reason)
        self._last_flush = 0.0

    def setup(self, **info) -> None:
        for r in read_rows(self.dir / RECORDS_FILE) + read_journal(self.dir / JOURNAL_FILE):
            self.rows[(r["trial_id"], int(r["iteration"]))] = r
        for r in read_rows(self.dir / STATUS_FILE):
            self.ended[r["trial_id"]] = r
        self.dir.mkdir(parents=True, exist_ok=True)
        self._journal = (self.dir / JOURNAL_FILE).open("a")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = record_from_result(trial.trial_id, result, trial_dir_of(trial))
        self.rows[(row["trial_id"], row["iteration"])] = row
        self._journal.write(json.dumps(row, default=_jsonable) + "\n")
        self._journal.flush()
        self.ended.pop(trial.trial_id, None)  # a retried or resumed trial that reports again is alive
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = {"trial_id": trial.trial_id, "status": "error", "error": _error_text(trial),
                                      S.TRIAL_DIR: trial_dir_of(trial)}
        self.flush()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.ended[trial.trial_id] = {"trial_id": trial.trial_id, "status": "terminated", "error": None,
                                      S.TRIAL_DIR: trial_dir_of(trial)}
        self.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.flush()

    def flush(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = [self.rows[k] for k in sorted(self.rows)]
        write_parquet(rows, self.dir / RECORDS_FILE)
        write_parquet(list(self.ended.values()), self.dir / STATUS_FILE)
        self._journal.truncate(0)  # everything in it is in the Parquet file now
        self._last_flush = time.monotonic()

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment state
        state = dict(self.__dict__)
        state.pop("_journal", None)
        state["rows"], state["ended"] = {}, {}  # reloaded from disk in setup()
        return state


def trial_dir_of(trial) -> str | None:
    """The trial's folder relative to the experiment folder, as Tune names it (its storage context)."""
    try:
        return trial.storage.trial_dir_name or None
    except AttributeError:  # a trial without storage (not created by a Tuner)
        return None


def read_journal(path: Path) -> list[dict]:
    """Rows of the journal; a torn last line (killed mid-write) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _error_text(trial) -> str:
    try:
        path = trial.error_file
        if path and Path(path).is_file():
            lines = [ln for ln in Path(path).read_text().strip().splitlines() if ln.strip()]
            return lines[-1][:500] if lines else "unknown error"
    except Exception:  # the reason is best effort; the failure itself is recorded regardless
        pass
    return "trial failed (see the trial's error.txt)"
