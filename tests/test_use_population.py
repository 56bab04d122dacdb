"""From population to use: learned_anisotropic in a real (tiny) search, export of the best
trial on validation, predict with the export, and analyze's prediction pictures."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distlmk import rundir
from distlmk import schema as S
from distlmk.cli import main, search
from distlmk.config import SearchConfig, from_dict
from distlmk.population.search import trial_list


@pytest.fixture(scope="module")
def population(ray_session, tmp_path_factory, cache_dir):
    tmp = tmp_path_factory.mktemp("use_pop")
    cfg = from_dict(SearchConfig, {
        "name": "usepop",
        "methods": ["fixed", "learned_anisotropic"],
        "fixed_sigmas": [2.0],
        "seeds": [0],
        "experiment": {
            "data": {"format": "synthetic", "input_size": [64, 56], "num_train": 16, "num_val": 6, "num_test": 8,
                     "synth_size": [128, 112], "root": str(cache_dir)},
            "model": {"base_channels": 8, "depth": 3},
            "train": {"epochs": 2, "batch_size": 8},
            "sigma": {"init": 2.0},
        },
        "resources": {"cpu": 1},
    }, "test")
    assert {t.variant for t in trial_list(cfg)} == {"fixed σ=2", "learned_anisotropic"}
    return search(cfg, out_dir=str(tmp), quiet=True).exp_dir  # the population's experiment folder


def test_learned_anisotropic_covariances_are_recorded(population):
    exp = population
    rec = pd.read_parquet(exp / rundir.RECORDS_FILE)
    aniso = rec[rec["method"] == "learned_anisotropic"].sort_values("epoch")
    assert len(aniso) == 2
    cov = S.stack_column(aniso["sigma/cov"])
    assert cov.shape == (2, 19, 3) and np.all(cov[..., :2] > 0)
    assert not np.allclose(cov[0, :, :2], 2.0)  # trained, not the initial value
    assert rec.loc[rec["method"] == "fixed", "sigma/cov"].isna().all()


def test_export_picks_the_best_on_validation_and_predict_loads_it(population, tmp_path, capsys):
    exp = population
    out = tmp_path / "model"
    assert main(["export", str(exp), "--by", "val", "--out", str(out)]) == 0
    info = json.loads((out / "export.json").read_text())
    summary = rundir.read_summary(exp)
    for tid, d in zip(summary[S.TRIAL_ID], summary[S.TRIAL_DIR], strict=True):  # recorded from Tune's trial
        result = (rundir.trial_path(exp, d) / "result.json").read_text().splitlines()
        assert json.loads(result[-1])["trial_id"] == tid
    best = summary.sort_values("val/mre_mm").iloc[0]
    assert info["trial_id"] == best["trial_id"] and info["val_mre_mm"] == pytest.approx(best["val/mre_mm"])
    assert info["test_mre_mm"] == pytest.approx(best["test/test/mre_mm"]) and "test/test/sdr_2_0" in info["test"]
    assert info["method"] in ("fixed", "learned_anisotropic") and info["test_mre_mm"] > 0
    assert (out / "model.json").is_file() and (out / "model.pt").is_file()
    synth = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(synth), "--train", "16", "--val", "6", "--test", "8",
                 "--size", "128", "112", "--split", "test"]) == 0
    pred = tmp_path / "pred"
    assert main(["predict", "--model", str(out), "--images", str(synth / "images"), "--out", str(pred),
                 "--truth", str(synth / "landmarks.csv")]) == 0
    ev = json.loads((pred / "evaluation.json").read_text())
    assert ev["mre_mm"] == pytest.approx(info["test_mre_mm"], abs=0.01)
    # the trial's own checkpoint folder (and its trial folder) load the same model
    from distlmk.infer.model import load_model

    ckpt = Path(info["checkpoint"])
    img = np.full((128, 112), 70, np.uint8)
    ref = load_model(out, "cpu").predict([img])[0]
    for path in (ckpt.parent, ckpt, ckpt.parent.parent):
        np.testing.assert_allclose(load_model(path, "cpu").predict([img])[0], ref)
    with pytest.raises(SystemExit):  # selection on test is refused
        main(["export", str(exp), "--by", "test", "--out", str(out)])


def test_analyze_writes_prediction_pictures(population):
    exp = population
    assert main(["analyze", str(exp)]) == 0
    report = (exp / "analysis" / "report.md").read_text()
    for name in ("ced_test.png", "overlays_test.png", "sigma_covariances.png", "per_landmark_test.csv"):
        assert (exp / "analysis" / name).is_file(), name
    assert "Per-landmark test errors (test)" in report and "| 0 sella |" in report
