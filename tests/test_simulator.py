"""The population simulator's trial (`distlmk.sim.network_model`) has the properties its warm start
relies on, and its committed parameters are the ones the calibration fitted."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from distlmk.sim import CALIBRATED, SIMULATORS, NetworkCostModel

L = 12
QUIET = CALIBRATED.replace(network_noise=0.0, landmark_noise=0.0)  # dynamics without noise


def run(sigmas_by_epoch, params=QUIET, seed=3):
    """Errors [E, L] and losses [E, L] of one simulated network under per-epoch sigmas [E, L]."""
    m = NetworkCostModel(L, seed, 0.7, 8.0, params)
    steps = [m.step(np.asarray(s, float)) for s in sigmas_by_epoch]
    return np.array([e for e, _ in steps]), np.array([loss for _, loss in steps])


def test_landmarks_are_coupled_through_one_network():
    """Landmark 0 keeps sigma 2; the others' sigma alone changes its error."""
    narrow, wide = np.full(L, 1.0), np.full(L, 6.0)
    narrow[0] = wide[0] = 2.0
    err_narrow, _ = run([narrow] * 5)
    err_wide, _ = run([wide] * 5)
    assert np.all(np.abs(err_narrow[1:, 0] - err_wide[1:, 0]) > 1e-3)
    assert err_wide[2, 0] < err_narrow[2, 0]  # wide targets train the shared network faster


def test_a_sigma_change_takes_epochs_to_show():
    """A switch from sigma 1 to 4 shows gradually: the gap to a network without memory (which
    answers the new sigma at once) opens at the switch and closes over the next epochs."""
    switch = [np.full(L, 1.0)] * 4 + [np.full(L, 4.0)] * 5
    with_memory, _ = run(switch)
    at_once, _ = run(switch, QUIET.replace(memory=1.0))
    gap = np.abs(with_memory - at_once).mean(-1)
    assert np.all(gap[:4] == 0) and gap[4] > 0.02
    assert gap[4] > gap[6] > gap[8]


def test_loss_scales_like_the_real_trainers():
    """An untrained network's heatmap MSE grows about as sigma^2 (the target's energy); training fits
    wide targets more completely, so the last epoch's grows more slowly (real: ~sigma^1.8, ~sigma^1.2)."""
    _, narrow = run([np.full(L, 1.5)] * 8)
    _, wide = run([np.full(L, 3.0)] * 8)
    first, last = (wide[0] / narrow[0]).mean(), (wide[-1] / narrow[-1]).mean()
    assert 3.0 < first <= 4.0 and 1.0 < last < first - 0.5


def test_early_best_sigma_is_wider_than_late_best_sigma():
    """Early rankings mislead: per landmark, the best grid sigma at epoch 2 is at least as wide as at
    the last epoch, and wider for a good share of landmarks."""
    grid = [1.0, 1.5, 2.5, 4.0, 6.0]
    errs = np.array([run([np.full(L, s)] * 8)[0] for s in grid])  # [S, E, L]
    early, late = errs[:, 1].argmin(0), errs[:, -1].argmin(0)
    assert np.all(early >= late) and np.mean(early > late) >= 0.25


def test_errors_are_on_the_real_scale():
    """A network at each landmark's own late optimum ends between 0.15 and 3 mm, as real ones do."""
    m = NetworkCostModel(19, 1, 0.7, 8.0, QUIET)
    for _ in range(8):
        err, _ = m.step(np.exp(m.log_target))
    assert 0.15 < err.min() and err.max() < 3.0


def test_state_round_trips_mid_run():
    a = NetworkCostModel(L, 9, 0.7, 8.0)
    for _ in range(3):
        a.step(np.full(L, 2.0))
    b = NetworkCostModel(L, 9, 0.7, 8.0)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    np.testing.assert_array_equal(a.step(np.full(L, 3.0))[0], b.step(np.full(L, 3.0))[0])


def test_committed_parameters_are_the_calibrations_fit():
    """CALIBRATED is what benchmarks/simulator_calibration.py fitted to the real grid (its JSON)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "simulator_calibration.json"
    result = json.loads(path.read_text())
    assert result["fitted"] and result["real_draws"] >= 2
    switch = ("memory", "shock")  # invisible in a fixed-sigma grid: fitted to real sigma switches
    grid_fit = {k: v for k, v in dataclasses.asdict(CALIBRATED).items() if k not in switch}
    assert grid_fit == pytest.approx({k: v for k, v in result["params"].items() if k not in switch}, rel=1e-4)
    assert result["misfit"] < result["misfit_cost_model"]  # closer to the real grid than the old simulator
    fit = json.loads((path.parent / "sigma_switch.json").read_text())
    assert (CALIBRATED.memory, CALIBRATED.shock) == (fit["fitted"]["memory"], fit["fitted"]["shock"])
    assert fit["misfit_committed"] < fit["misfit_before"] / 5  # the switch cost was not in the simulator before


def test_narrowing_sigma_costs_and_widening_does_not():
    """Real networks switched from sigma 4 to 1.5 halfway read several times the constant run's error
    the epoch after (benchmarks/results/sigma_switch.json): the simulator's shock. Without it (shock 0)
    the switched network is as good as the constant one at once; widening pays no shock."""
    narrowed, _ = run([np.full(L, 4.0)] * 4 + [np.full(L, 1.5)] * 4)
    widened, _ = run([np.full(L, 1.5)] * 4 + [np.full(L, 4.0)] * 4)
    narrow, _ = run([np.full(L, 1.5)] * 8)
    free, _ = run([np.full(L, 4.0)] * 4 + [np.full(L, 1.5)] * 4, QUIET.replace(shock=0.0))
    assert narrowed[4].mean() > 2 * narrow[4].mean() and narrowed[-1].mean() > narrow[-1].mean()
    assert free[4].mean() < 1.2 * narrow[4].mean()
    no_shock, _ = run([np.full(L, 1.5)] * 4 + [np.full(L, 4.0)] * 4, QUIET.replace(shock=0.0))
    np.testing.assert_allclose(widened, no_shock)


def test_every_simulator_drives_a_simulated_population():
    from distlmk.config import SigmaConfig
    from distlmk.policy.rollout import rollout

    for name in SIMULATORS:
        res = rollout("landmark_pbt", SigmaConfig(method="rl", min=0.7, max=8.0), 4, 5, 4, seed=2, tag=name,
                      simulator=name)
        assert res.epochs_used.tolist() == [4] * 4 and np.all(np.isfinite(res.final_err))
