import json

import numpy as np
import pytest

from distlmk.cli import main
from distlmk.train.checkpoint import load_checkpoint, save_checkpoint
from distlmk.train.fit import fit
from distlmk.train.trainer import Trainer


def test_short_training_loss_falls_and_metrics_contract(tiny_experiment, tmp_path):
    tiny_experiment.train.epochs = 4
    m = fit(tiny_experiment, tmp_path, log=lambda *_: None)
    hist = json.loads((tmp_path / "history.json").read_text())
    losses = [h["train/loss"] for h in hist]
    assert losses[-1] < 0.7 * losses[0]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "mre_mm",
        "sdr",
        "per_landmark_mre_mm",
        "sigma",
        "epochs",
        "method",
        "device",
        "baseline_mean_mre_mm",
    ):
        assert key in saved
    assert set(saved["sdr"]) == {"2.0", "2.5", "3.0", "4.0"}
    assert len(saved["per_landmark_mre_mm"]) == len(saved["sigma"]) == 19
    assert saved["epochs"] == 4 and saved["method"] == "fixed" and saved["device"] == "cpu"
    assert m["mre_mm"] == saved["mre_mm"] == saved["test/test/mre_mm"]
    errors = np.asarray(saved["test/test/errors_mm"])  # [N test images, L]
    assert errors.shape == (8, 19) and errors.mean() == pytest.approx(saved["mre_mm"], abs=1e-3)
    assert saved["val/mre_mm"] == hist[-1]["val/mre_mm"]


@pytest.mark.parametrize("method", ["learned", "learned_anisotropic", "adaloss"])
def test_methods_train(tiny_experiment, method):
    tiny_experiment.sigma.method = method
    tiny_experiment.train.epochs = 2
    tiny_experiment.sigma.adaloss_window = 1
    tr = Trainer(tiny_experiment)
    while not tr.done:
        tr.run_epoch()
    assert tr.history[-1]["method"] == method
    assert np.isfinite(tr.history[-1]["val/mre_mm"])
    if method == "learned_anisotropic":
        assert np.asarray(tr.history[-1]["sigma/cov"]).shape == (19, 3)


def test_resume_from_checkpoint_continues_exactly(tiny_experiment, tmp_path):
    tiny_experiment.train.epochs = 3
    a = Trainer(tiny_experiment)
    a.run_epoch()
    save_checkpoint(a.state_dict(), tmp_path / "ck.pt")
    a.run_epoch()
    b = Trainer(tiny_experiment)
    b.load_state_dict(load_checkpoint(tmp_path / "ck.pt"))
    assert b.epoch == 1
    b.run_epoch()
    assert b.history[-1]["train/loss"] == pytest.approx(a.history[-1]["train/loss"], rel=1e-4)
    assert b.history[-1]["val/mre_mm"] == pytest.approx(a.history[-1]["val/mre_mm"], rel=1e-3)


def test_cli_train_resume_and_bad_config(tiny_experiment, tmp_path, capsys):
    import yaml

    from distlmk.config import to_dict

    cfg = to_dict(tiny_experiment)
    cfg["train"]["epochs"] = 2
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", "--config", str(p), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    cfg["train"]["epochs"] = 3
    p.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(p), "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
    assert "resumed from" in capsys.readouterr().out
    p.write_text("train:\n  lr: fast\n")
    assert main(["train", "--config", str(p)]) == 2
    assert "train.lr: expected a number" in capsys.readouterr().err


def test_schedule_goes_coarse_to_fine(tiny_experiment):
    """The schedule baseline starts at schedule_start and reaches schedule_end in the last epoch."""
    tiny_experiment.sigma.method = "schedule"
    tiny_experiment.sigma.schedule_start, tiny_experiment.sigma.schedule_end = 4.0, 1.0
    tiny_experiment.train.epochs = 3
    tr = Trainer(tiny_experiment)
    while not tr.done:
        tr.run_epoch()
    used = [h["sigma/used"][0] for h in tr.history]
    assert used[0] == pytest.approx(4.0) and used[-1] == pytest.approx(1.0) and used[0] > used[1] > used[2]


def test_a_step_schedule_switches_once_at_the_middle_epoch(tiny_experiment):
    """`step` trains the first half of the epochs at schedule_start and the rest at schedule_end (the
    switch `benchmarks/sigma_switch.py` measures), on every landmark."""
    tiny_experiment.sigma.method = "schedule"
    tiny_experiment.sigma.schedule_start, tiny_experiment.sigma.schedule_end = 1.5, 4.0
    tiny_experiment.sigma.schedule_shape = "step"
    tiny_experiment.train.epochs = 4
    tr = Trainer(tiny_experiment)
    while not tr.done:
        tr.run_epoch()
    used = np.array([h["sigma/used"] for h in tr.history])
    np.testing.assert_allclose(used, np.repeat([[1.5], [1.5], [4.0], [4.0]], used.shape[1], axis=1))
