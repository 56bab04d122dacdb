import numpy as np
import pytest

from distlmk.train.metrics import mean_position_baseline, radial_errors_mm, summarize


def test_radial_errors_and_summary_hand_computed():
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 1.0]], [[0.0, 0.0], [6.0, 8.0]]])  # 5, 1, 0, 10 px
    err = radial_errors_mm(pred, gt, np.array([0.5, 0.1]))  # -> 2.5, 0.5, 0, 1.0 mm
    np.testing.assert_allclose(err, [[2.5, 0.5], [0.0, 1.0]])
    s = summarize(err)
    assert s["mre_mm"] == pytest.approx(1.0)
    assert s["sdr"] == {"2.0": 75.0, "2.5": 100.0, "3.0": 100.0, "4.0": 100.0}
    assert s["per_landmark_mre_mm"] == pytest.approx([1.25, 0.75])


def test_mean_position_baseline():
    train = np.array([[[10.0, 10.0]], [[30.0, 10.0]]])  # mean (20, 10) in 100x100 images
    sizes = np.array([[100.0, 100.0], [100.0, 100.0]])
    test = np.array([[[20.0, 13.0]]])
    assert mean_position_baseline(train, sizes, test, sizes[:1], np.array([2.0])) == pytest.approx(
        6.0
    )
