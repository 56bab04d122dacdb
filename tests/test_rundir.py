"""The experiment folder's one owner: every file name spelled in distlmk.rundir only, readers that
name a missing file, and the one decoder of nested arrays read back from Parquet."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distlmk import rundir
from distlmk import schema as S

PACKAGE = Path(rundir.__file__).parent
FILE_NAMES = [v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str) and "." in v]


def test_every_file_name_is_spelled_in_rundir_only():
    assert {"search_config.json", "run_info.json", "records.parquet", "trainer.pt", "comparison.md"} <= set(
        FILE_NAMES)
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "rundir.py"}
    spelled = {name: sorted(str(p.relative_to(PACKAGE)) for p, text in sources.items() if name in text)
               for name in FILE_NAMES}
    assert not {k: v for k, v in spelled.items() if v}, "spell these through distlmk.rundir"


def test_readers_name_the_missing_file(tmp_path):
    for read in (rundir.read_run_info, rundir.read_summary, rundir.read_search_config):
        with pytest.raises(FileNotFoundError, match=r"\.(json|parquet): missing"):
            read(tmp_path)
    with pytest.raises(rundir.MissingFileError, match=rundir.POLICY_STATS):
        rundir.read_policy_stats(tmp_path, required=True)
    assert rundir.read_policy_stats(tmp_path) is None and rundir.run_info_or_none(tmp_path) is None
    assert rundir.read_search_config(tmp_path, required=False) == {} and rundir.read_policy_history(tmp_path) == []
    assert not rundir.has_finished(tmp_path)


def test_run_info_is_typed_and_ignores_unknown_keys(tmp_path):
    import json

    (tmp_path / rundir.RUN_INFO).write_text(json.dumps({
        "elapsed_s": 3.5, "started_at": 1.0, "num_trials": 2, "num_errors": 0,
        "resources_per_trial": {"cpu": 0.5}, "later_key": 1}))
    info = rundir.read_run_info(tmp_path)
    assert (info.elapsed_s, info.num_trials, info.cpu, info.gpu) == (3.5, 2, 0.5, 0.0)


def test_trial_path_is_relative_to_the_experiment_folder(tmp_path):
    assert rundir.trial_path(tmp_path, "train_trial_abc") == tmp_path / "train_trial_abc"
    assert rundir.trial_path(tmp_path, None) is None and rundir.trial_path(tmp_path, float("nan")) is None


def test_nested_arrays_decode_the_same_from_parquet(tmp_path):
    df = pd.DataFrame({
        "per_landmark": [[1.0, 2.0], [3.0, float("nan")]],
        "errors": [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], None],
        "points": [[[[1.0, 2.0]], [[3.0, 4.0]]], None],
    })
    df.to_parquet(tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert S.stack_column(back["per_landmark"]).shape == (2, 2)
    assert np.isnan(S.as_array(back["per_landmark"][1])[1])
    assert S.as_array(back["errors"][0]).shape == (3, 2) and S.as_array(back["errors"][1]) is None
    assert S.as_array(back["points"][0]).shape == (2, 1, 2)
    with pytest.raises(ValueError):
        S.as_array([[1.0, 2.0], [3.0]])
