"""From population to use: learned_anisotropic in a real (tiny) search, export of the best
trial on validation, predict with the export, and analyze's prediction pictures."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distlmk import rundir
from distlmk import schema as S
from distlmk.cli import main
from distlmk.config import SearchConfig, from_dict
from distlmk.population.plan import plan_trials
from distlmk.runner import search


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
    assert {t.variant for t in plan_trials(cfg, 19)} == {"fixed σ=2", "learned_anisotropic"}
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


def test_export_picks_the_best_on_validation_and_predict_loads_it(population, tmp_path, capsys, report_line):
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
    # landmarks.csv holds pixels to 3 decimals (up to 4e-4 mm off); the truth at full precision, so
    # that any gap below comes from the points alone
    from distlmk.data.synthetic import synthetic_dataset

    ds = synthetic_dataset(16, 6, 8, size=(128, 112))
    exact = {(f"{ds.image_ids[i]}.png", k): (float(x), float(y))
             for i in ds.splits["test"] for k, (x, y) in enumerate(ds.landmarks[i])}
    written = pd.read_csv(synth / "landmarks.csv")
    assert len(written) == len(exact) == 8 * 19
    for r in written.itertuples():
        assert np.allclose(exact[(r.image, r.landmark)], (r.x, r.y), atol=6e-4), r
    (synth / "landmarks.csv").write_text("image,landmark,x,y\n" + "".join(
        f"{img},{k},{x!r},{y!r}\n" for (img, k), (x, y) in exact.items()))
    pred = tmp_path / "pred"
    # on the trial's torch thread count (resources.cpu 1): another count sums the convolutions in another
    # order, which this barely trained model's flat heatmaps turn into ~1e-4 mm (measured 1.4e-4)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["predict", "--model", str(out), "--images", str(synth / "images"), "--out", str(pred),
                     "--truth", str(synth / "landmarks.csv")]) == 0
    finally:
        torch.set_num_threads(threads)
    ev = json.loads((pred / "evaluation.json").read_text())
    # predict runs evaluation's own inference path on the lossless PNGs: the same points, so the same
    # errors up to float32 rounding (README: 4e-7 mm), overall and landmark by landmark
    per_landmark = np.array(list(ev["per_landmark"].values()))
    scored = np.asarray(info["test"]["test/test/per_landmark_mre_mm"], float)
    gap = max(abs(ev["mre_mm"] - info["test_mre_mm"]), float(np.abs(per_landmark - scored).max()))
    report_line(f"predict vs evaluation: test MRE {ev['mre_mm']:.7f} vs {info['test_mre_mm']:.7f} mm, "
                f"largest gap (overall or per landmark) {gap:.2e} mm")
    assert ev["num_images"] == 8 and per_landmark.shape == scored.shape == (19,)
    assert gap <= 1e-5, f"predict and evaluation differ by {gap:.2e} mm"
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
