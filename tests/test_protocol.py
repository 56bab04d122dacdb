"""The trial side of the one protocol: rows, rewards, action application, state round trip."""

import numpy as np
import pytest

from distlmk.config import RLControlConfig, SigmaConfig
from distlmk.control.rl import TrialState
from distlmk.protocol import OBS_DIM, OBSERVATION_SPACE


def state(L=3, reference=None, **rl):
    cfg = SigmaConfig(method="rl", min=1.0, max=8.0, rl=RLControlConfig(**rl))
    return TrialState(L, cfg, np.asarray(reference if reference is not None else [2.0] * L, float))


def test_rows_rewards_and_population_context():
    p = state(reference=[1.0, 2.0, 4.0])
    err0 = np.array([10.0, 20.0, 5.0])
    obs = p.observation(np.array([1.0, 8.0, np.sqrt(8.0)]), err0, np.ones(3), 1, 10)
    assert obs.shape == (4, OBS_DIM) and all(OBSERVATION_SPACE.contains(row) for row in obs)
    np.testing.assert_allclose(obs[:3, 1], [0.0, 1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(obs[:3, 3], np.log([1.0, 4.0, np.sqrt(8.0) / 4.0]), atol=1e-6)  # vs reference
    assert obs[3, 0] == 1 and np.all(obs[:3, 0] == 0)
    p.commit(err0, 1)
    err1 = np.array([8.0, 20.0, 6.0])
    r = p.rewards(err1, 3)
    np.testing.assert_allclose(r[:3], 10.0 * np.log([10 / 8, 1.0, 5 / 6]), rtol=1e-6)
    assert r[3] == pytest.approx(r[:3].mean() - 0.02)
    obs1 = p.observation(np.ones(3), err1, np.ones(3), 3, 10)
    assert obs1[0, 4] == pytest.approx(0.2) and obs1[2, 4] == pytest.approx(-0.2)


def test_apply_moves_clips_and_gates_stop():
    p = state(step_factor=2.0, min_progress_to_stop=0.5)
    sigma = np.array([1.0, 4.0, 8.0])
    rows = np.array([0, 1, 2, 3])
    acts = np.array([[0, 1], [2, 0], [2, 1], [1, 1]])  # lower+end, raise, raise+end, trial stop
    s, stop, ended = p.apply(sigma, rows, acts, progress=0.2)
    np.testing.assert_allclose(s, [1.0, 8.0, 8.0])  # clipped to [min, max]
    assert not stop and not ended.any()  # too early to stop/end
    s, stop, ended = p.apply(sigma, rows, acts, progress=0.6)
    assert stop and ended.tolist() == [True, False, True]
    np.testing.assert_array_equal(p.last_move, [-1, 1, 1])
    q = state(step_factor=2.0, min_progress_to_stop=0.5, allow_stop=False)
    _, stop, ended = q.apply(sigma, rows, acts, progress=0.9)
    assert not stop and not ended.any()  # stop action switched off


def test_state_round_trip():
    p = state()
    p.observation(np.ones(3), np.ones(3), np.ones(3), 1, 5)
    p.commit(np.ones(3) * 2, 1)
    p.ended[1] = True
    q = state()
    q.load_state_dict(p.state_dict())
    assert q.ended.tolist() == [False, True, False] and q.prev_epoch == 1
    np.testing.assert_allclose(q.prev_err, 2.0)


def test_client_sends_terminal_steps_and_truncates_through_any_transport():
    """RLSigma speaks the protocol the same way to every transport: a first request without
    rewards after end_trial, newly ended landmarks' terminal step, and the trial's truncation."""
    from distlmk.control import EpochFeedback, make_controller

    class Recorder:
        def __init__(self):
            self.requests, self.ended = [], []
            self.last_latency_ms = None  # PolicyTransport's attribute

        def step(self, req):
            self.requests.append(req)
            end = 1 if len(self.requests) == 2 else 0  # end every landmark at the 2nd decision
            return np.array([[2, end]] * len(req.rows))

        def end_trial(self, tid):
            self.ended.append(tid)

    t = Recorder()
    cfg = SigmaConfig(method="rl", init=2.0, rl=RLControlConfig(min_progress_to_stop=0.0, allow_stop=True))
    c = make_controller(cfg, 2, trial_id="x", transport=t)
    for epoch in range(1, 5):
        d = c.observe(EpochFeedback(epoch, 4, np.ones(2) / epoch, np.ones(2)))
        if d.stop:
            break
    first, second, third = t.requests[:3]
    assert t.ended == ["x"] and first.rewards is None and list(first.rows) == [0, 1, 2]
    assert second.rewards is not None and not second.terminated.any()
    # the 2nd answer ended both landmarks and stopped the trial: one terminal request for every row
    assert d.stop and list(third.rows) == [0, 1, 2] and third.terminated.all()
    np.testing.assert_allclose(c.sigma_values(), 2.0 * 1.25**2)
