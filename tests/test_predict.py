"""distlmk predict: a trained model on image files equals its own evaluation; failures are named."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from dicom_util import write_dicom

from distlmk.cli import main
from distlmk.config import to_dict
from distlmk.data.transforms import resize_to_input
from distlmk.infer.model import ModelLoadError, load_model
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint


def read_predictions(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = sorted({r["image"] for r in rows})
    num_l = max(int(r["landmark"]) for r in rows) + 1
    pts = np.full((len(images), num_l, 2), np.nan)
    for r in rows:
        pts[images.index(r["image"]), int(r["landmark"])] = float(r["x"]), float(r["y"])
    return images, pts, rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One tiny `distlmk train` run (2 epochs) and its synthetic test images as PNG files."""
    from distlmk.config import ExperimentConfig, from_dict

    tmp = tmp_path_factory.mktemp("predict")
    exp = from_dict(ExperimentConfig, {
        "name": "tiny", "data": {"format": "synthetic", "input_size": [64, 56], "num_train": 16, "num_val": 6,
                                 "num_test": 10, "synth_size": [128, 112], "root": str(cache_dir)},
        "model": {"base_channels": 8, "depth": 3},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "torch_threads": 1},
        "sigma": {"method": "fixed", "init": 2.0}})
    (tmp / "c.yaml").write_text(yaml.safe_dump(to_dict(exp)))
    model = tmp / "M"
    assert main(["train", "--config", str(tmp / "c.yaml"), "--out", str(model)]) == 0
    data = tmp / "synth"
    assert main(["data", "synth", "--config", str(tmp / "c.yaml"), "--out", str(data), "--split", "test"]) == 0
    return model, data


def test_predict_equals_evaluation(trained, tmp_path, capsys):
    model, data = trained
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), "--images", str(data / "images"), "--out", str(out),
                 "--truth", str(data / "landmarks.csv")]) == 0
    metrics = json.loads((model / "metrics.json").read_text())
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["num_images"] == 10
    assert ev["mre_mm"] == pytest.approx(metrics["mre_mm"], abs=0.01)
    images, pts, rows = read_predictions(out / "predictions.csv")
    assert list(rows[0]) == ["image", "landmark", "name", "x", "y", "x_mm", "y_mm", "confidence"]
    assert rows[0]["name"] == "sella" and float(rows[0]["x_mm"]) == pytest.approx(float(rows[0]["x"]) * 0.75 * 256 / 112, abs=1e-3)
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [f"{Path(i).stem}.png" for i in images]
    assert "MRE" in capsys.readouterr().out
    # the same points as the trainer's own evaluation path
    from distlmk.train.trainer import Trainer

    state = load_checkpoint(model / "checkpoint.pt")
    from distlmk.config import ExperimentConfig, from_dict

    tr = Trainer(from_dict(ExperimentConfig, json.loads((model / "config.json").read_text())))
    tr.load_state_dict(state)
    np.testing.assert_allclose(pts, tr.predict("test"), atol=1e-3)  # csv keeps 4 decimals


def test_model_sources_and_old_checkpoints(trained, tmp_path):
    model, data = trained
    m = load_model(model, "cpu")
    assert m.meta["input_size"] == [64, 56] and m.meta["train_spacing_mm"] == pytest.approx(0.75 * 256 / 112)
    img = np.zeros((90, 70), np.uint8)
    pts, conf = m.predict([img, np.full((128, 112), 50, np.uint8)])
    assert pts.shape == (2, 19, 2) and conf.shape == (2, 19)
    # a checkpoint saved before model metadata: rebuilt from config.json beside it
    state = load_checkpoint(model / "checkpoint.pt")
    del state["meta"]
    old = tmp_path / "old"
    old.mkdir()
    save_checkpoint(state, old / "checkpoint.pt")
    (old / "config.json").write_text((model / "config.json").read_text())
    m2 = load_model(old, "cpu")
    np.testing.assert_allclose(m2.predict([img])[0], pts[:1], atol=1e-3)  # batch of 1 vs 2: float noise
    (old / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="before distlmk saved model metadata"):
        load_model(old, "cpu")
    with pytest.raises(ModelLoadError, match="no model here"):
        load_model(tmp_path, "cpu")


def test_unreadable_images_are_named_and_the_rest_predicted(trained, tmp_path, capsys):
    model, data = trained
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    good = sorted((data / "images").iterdir())[:2]
    for f in good:
        (imgs / f.name).write_bytes(f.read_bytes())
    (imgs / "broken.png").write_bytes(b"not a png")
    write_dicom(imgs / "colour.dcm", np.zeros((16, 16, 3), np.uint8))
    write_dicom(imgs / "xray.dcm", np.full((128, 112), 90, np.uint8), spacing=0.2)
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(model), "--images", str(imgs), str(tmp_path / "nope.png"),
               "--out", str(out), "--no-overlays"])
    assert rc == 3
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "colour.dcm: colour DICOM" in captured.err
    images, _, rows = read_predictions(out / "predictions.csv")
    assert images == sorted([good[0].name, good[1].name, "xray.dcm"])
    dcm = [r for r in rows if r["image"] == "xray.dcm"][0]
    assert float(dcm["x_mm"]) == pytest.approx(float(dcm["x"]) * 0.2, abs=1e-3)  # the header's spacing
    png = [r for r in rows if r["image"] == good[0].name][0]
    assert png["x_mm"] == ""  # no spacing known for a loose PNG
    failed = (out / "failed.csv").read_text()
    assert "broken.png" in failed and "colour.dcm" in failed and "nope.png" in failed
    assert not (out / "overlays").exists()
    assert main(["predict", "--model", str(model), "--images", str(tmp_path / "empty_dir_missing")]) == 2


def test_resize_path_is_shared():
    imgs, scale = resize_to_input([np.zeros((100, 80), np.uint8)], (50, 40))
    assert imgs.shape == (1, 50, 40) and np.allclose(scale, [[2.0, 2.0]])


def test_device_cuda_without_gpu_is_a_clear_error(trained, tmp_path, capsys):
    import torch

    model, data = trained
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["predict", "--model", str(model), "--images", str(data), "--device", "cuda",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--device is 'cuda' but no CUDA device" in capsys.readouterr().err
