import numpy as np
import pytest

from distlmk.config import RLControlConfig, SigmaConfig
from distlmk.policy.protocol import OBS_DIM, OBSERVATION_SPACE, REWARD_SCALE, TrialProtocol


def proto(L=3, **rl):
    return TrialProtocol(L, SigmaConfig(method="rl", min=1.0, max=8.0, rl=RLControlConfig(**rl)))


def test_rows_and_rewards():
    p = proto()
    err0 = np.array([10.0, 20.0, 5.0])
    obs = p.observation(np.array([1.0, 8.0, np.sqrt(8.0)]), err0, np.ones(3), 1, 10, 300.0)
    assert obs.shape == (4, OBS_DIM) and all(OBSERVATION_SPACE.contains(row) for row in obs)
    np.testing.assert_allclose(obs[:3, 1], [0.0, 1.0, 0.5], atol=1e-6)
    assert obs[3, 0] == 1 and np.all(obs[:3, 0] == 0)
    p.commit(err0, 1)
    err1 = np.array([8.0, 20.0, 6.0])
    r = p.rewards(err1, 3, cost=0.1)
    np.testing.assert_allclose(r[:3], REWARD_SCALE * np.log([10 / 8, 1.0, 5 / 6]), rtol=1e-6)
    assert r[3] == pytest.approx(r[:3].mean() - 0.2)
    obs1 = p.observation(np.ones(3), err1, np.ones(3), 3, 10, 300.0)
    assert obs1[0, 4] == pytest.approx(0.2) and obs1[2, 4] == pytest.approx(-0.2)


def test_apply_moves_clips_and_gates_stop():
    p = proto(step_factor=2.0, min_progress_to_stop=0.5)
    sigma = np.array([1.0, 4.0, 8.0])
    rows = np.array([0, 1, 2, 3])
    acts = np.array([[0, 1], [2, 0], [2, 1], [1, 1]])  # lower+end, raise, raise+end, trial stop
    s, stop, ended = p.apply(sigma, rows, acts, progress=0.2)
    np.testing.assert_allclose(s, [1.0, 8.0, 8.0])  # clipped to [min, max]
    assert not stop and not ended.any()  # too early to stop/end
    s, stop, ended = p.apply(sigma, rows, acts, progress=0.6)
    assert stop and ended.tolist() == [True, False, True]
    np.testing.assert_array_equal(p.last_move, [-1, 1, 1])


def test_state_round_trip():
    p = proto()
    p.observation(np.ones(3), np.ones(3), np.ones(3), 1, 5, 100.0)
    p.commit(np.ones(3) * 2, 1)
    p.ended[1] = True
    q = proto()
    q.load_state_dict(p.state_dict())
    assert q.ended.tolist() == [False, True, False] and q.prev_epoch == 1
    np.testing.assert_allclose(q.prev_err, 2.0)
