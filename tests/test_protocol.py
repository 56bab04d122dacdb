"""The trial side of the one protocol: rows, rewards, action application, state round trip."""

import numpy as np
import pytest

from distlmk.config import RLControlConfig, SigmaConfig
from distlmk.control.rl import TrialState
from distlmk.protocol import BOARD_DIM, BOARD_FEATURES, OBS_DIM, OBSERVATION_SPACE, BoardPost, Decided
from distlmk.protocol import Feature as F


def state(L=3, **rl):
    cfg = SigmaConfig(method="rl", min=1.0, max=8.0, rl=RLControlConfig(**rl))
    return TrialState(L, cfg)


def test_rows_and_own_rewards():
    p = state(reward="own")
    err0 = np.array([10.0, 20.0, 5.0])
    board = np.arange(3 * BOARD_DIM, dtype=np.float32).reshape(3, BOARD_DIM) / 10
    obs = p.observation(np.array([1.0, 8.0, np.sqrt(8.0)]), err0, np.ones(3), 1, 10, board)
    assert obs.shape == (4, OBS_DIM) and all(OBSERVATION_SPACE.contains(row) for row in obs)
    np.testing.assert_allclose(obs[:3, F.SIGMA_POS], [0.0, 1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(obs[:3, list(BOARD_FEATURES)], board)  # the board's columns, by name
    np.testing.assert_allclose(obs[3, list(BOARD_FEATURES)], board.mean(axis=0), rtol=1e-6)  # trial row: means
    assert obs[3, F.IS_TRIAL_ROW] == 1 and np.all(obs[:3, F.IS_TRIAL_ROW] == 0)
    alone = p.observation(np.ones(3), err0, np.ones(3), 1, 10)
    assert np.all(alone[:, list(BOARD_FEATURES)] == 0)  # no board: neutral
    p.commit(err0, 1)
    err1 = np.array([8.0, 20.0, 6.0])
    r = p.rewards(err1, 3)
    np.testing.assert_allclose(r[:3], 10.0 * np.log([10 / 8, 1.0, 5 / 6]), rtol=1e-6)
    assert r[3] == pytest.approx(r[:3].mean() - 0.02)
    obs1 = p.observation(np.ones(3), err1, np.ones(3), 3, 10)
    assert obs1[0, F.TREND] == pytest.approx(0.2) and obs1[2, F.TREND] == pytest.approx(-0.2)


def test_peer_reward_cancels_a_common_trend_and_falls_back_to_own_alone():
    """Every member's error falls by the same factor: the peer reward is 0, the own reward positive."""
    peer, own = state(reward="peer"), state(reward="own")
    err0, med0 = np.array([10.0, 4.0, 6.0]), np.array([12.0, 5.0, 6.0])
    for p in (peer, own):
        p.commit(err0, 1, med0)
    r_peer = peer.rewards(0.7 * err0, 2, 0.7 * med0)  # the trial and its peers' median fell by 30 %
    r_own = own.rewards(0.7 * err0, 2, 0.7 * med0)
    np.testing.assert_allclose(r_peer[:3], 0.0, atol=1e-5)
    np.testing.assert_allclose(r_own[:3], 10 * np.log(1 / 0.7), rtol=1e-6)
    # beating the peers pays: its error falls by 30 %, theirs by 10 %
    np.testing.assert_allclose(peer.rewards(0.7 * err0, 2, 0.9 * med0)[:3], 10 * np.log(0.9 / 0.7), rtol=1e-5)
    # no peers now (or at the previous decision): the own form
    np.testing.assert_allclose(peer.rewards(0.7 * err0, 2, None)[:3], r_own[:3], rtol=1e-6)
    lonely = state(reward="peer")
    lonely.commit(err0, 1, None)
    np.testing.assert_allclose(lonely.rewards(0.7 * err0, 2, 0.7 * med0)[:3], r_own[:3], rtol=1e-6)


def test_terminal_reward_arrives_on_the_last_step_only():
    p = state(reward="terminal", epoch_cost=0.0)
    err0 = np.array([10.0, 4.0, 6.0])
    p.observation(np.ones(3), err0, np.ones(3), 1, 10)
    p.commit(err0, 1)
    mid = p.rewards(0.5 * err0, 2, final=np.array([False, True, False]))
    np.testing.assert_allclose(mid, [0.0, 10 * np.log(2), 0.0, 0.0], rtol=1e-6)  # landmark 1 ended
    end = p.rewards(0.25 * err0, 3, trial_final=True)
    np.testing.assert_allclose(end, [10 * np.log(4)] * 4, rtol=1e-6)


def test_apply_moves_clips_and_gates_stop():
    assert not RLControlConfig().allow_stop  # off unless asked for: it has not earned its place
    p = state(step_factor=2.0, min_progress_to_stop=0.5, allow_stop=True)
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


def test_adopt_takes_a_top_peers_sigma_drawn_per_member():
    """ADOPT sets sigma_l to the board's donor: one of the peers that do best on l (checked against
    hand-made peers), drawn per member, so a population that adopts spreads over the top peers'
    sigmas instead of herding onto one; without a board answer it keeps."""
    from distlmk.policy.board import Boards

    peer_sigma = np.array([[4.0, 1.0, 7.9], [1.5, 8.0, 3.0], [3.0, 2.0, 2.0], [5.0, 6.0, 7.0]])
    peer_err = np.array([[0.5, 2.0, 1.0], [2.0, 1.0, 3.0], [3.0, 4.0, 4.0], [4.0, 5.0, 5.0]])
    sigma, err = np.array([2.0, 2.0, 6.0]), np.array([9.0, 9.0, 9.0])  # the worst on every landmark
    rows, adopt = np.array([0, 1, 2, 3]), np.array([[3, 0]] * 4)
    taken = []
    for member in range(60):  # each against the same four peers
        boards = Boards()
        for i, (s_, e_) in enumerate(zip(peer_sigma, peer_err, strict=True)):
            boards.post(BoardPost("p", f"peer{i}", 3, s_, e_))
        ctx = boards.answer(BoardPost("p", f"me{member}", 3, sigma, err, quantile=0.5, member=member))
        p = state(step_factor=2.0)
        s, stop, ended = p.apply(sigma, rows, adopt, progress=0.5, donor=ctx.donor_sigma)
        assert not stop and not ended.any()
        taken.append(s)
    taken = np.array(taken)  # [members, L]: quantile 0.5 of 4 peers = the best two on each landmark
    top_two = [{4.0, 1.5}, {8.0, 1.0}, {7.9, 3.0}]
    for lm in range(3):
        assert set(np.round(taken[:, lm], 6)) == top_two[lm]  # every member took a top peer's, and both were taken
    kept, _, _ = state().apply(sigma, rows, adopt, progress=0.5, donor=None)  # no board answer: nothing to adopt
    np.testing.assert_allclose(kept, sigma)
    p = state(step_factor=2.0)
    mixed, _, _ = p.apply(sigma, rows, np.array([[0, 0], [3, 0], [1, 0], [2, 0]]), progress=0.5,
                          donor=np.array([4.0, 8.0, 7.9]))
    np.testing.assert_allclose(mixed, [1.0, 8.0, 6.0])  # lower, adopt, keep; the trial row moves nothing
    np.testing.assert_array_equal(p.last_move, [-1, 1, 0])


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
            self.requests, self.ended, self.left = [], [], []
            self.last_latency_ms = None  # PolicyTransport's attribute

        def step(self, req):
            self.requests.append(req)
            end = 1 if len(self.requests) == 2 else 0  # end every landmark at the 2nd decision
            return np.array([[2, end]] * len(req.rows))

        def end_trial(self, tid):
            self.ended.append(tid)

        def context(self, post):
            return None  # no board reached: neutral features, own rewards

        def decide(self, req):  # the one call of a decision: its step completed from the (absent) board
            return Decided(self.step(req.complete(self.context(req.post))), None)

        def leave(self, tid):
            self.left.append(tid)

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
    c.close()
    assert t.left == ["x"]  # over: it leaves the board


def test_one_call_decision_completes_to_the_rows_and_rewards_of_their_definition():
    """The step a server completes from a `DecisionRequest` and the board's context equals the rows
    `TrialState.observation` builds with the board features and the rewards `TrialState.rewards`
    gives with the peers' median; without a context, the neutral rows and the own form."""
    from distlmk.protocol import BoardContext, BoardPost, DecisionRequest

    p = state(reward="peer")
    sigma, err0, err1 = np.array([1.0, 2.0, 4.0]), np.array([10.0, 4.0, 6.0]), np.array([8.0, 4.0, 7.0])
    p.observation(sigma, err0, np.ones(3), 1, 10)
    p.commit(err0, 1, np.array([12.0, 5.0, 6.0]))
    board = np.random.default_rng(0).normal(0, 1, (3, BOARD_DIM)).astype(np.float32)
    median = np.array([9.0, 5.0, 5.0])
    board[:, BOARD_FEATURES.index(F.ERR_VS_MEDIAN)] = np.log(err1 / median)  # as the board computes it
    ctx = BoardContext(board, median, 4)
    own, peer = p.reward_parts(err1, 3)
    rows = np.array([0, 2, 3])  # landmark 1 ended earlier
    req = DecisionRequest(BoardPost("pop", "x", 3, sigma, err1), rows, p.observation(sigma, err1, np.ones(3), 3, 10),
                          own, np.zeros(3, bool), False, peer)
    step = req.complete(ctx)
    np.testing.assert_allclose(step.obs, p.observation(sigma, err1, np.ones(3), 3, 10, board)[rows], atol=1e-6)
    np.testing.assert_allclose(step.rewards, p.rewards(err1, 3, ctx.peer_median_err)[rows], rtol=1e-6)
    assert step.trial_id == "x" and list(step.rows) == [0, 2, 3]
    lonely = req.complete(None)
    assert np.all(lonely.obs[:, list(BOARD_FEATURES)] == 0)
    np.testing.assert_allclose(lonely.rewards, p.rewards(err1, 3, None)[rows], rtol=1e-6)
    assert not np.allclose(step.rewards, lonely.rewards)  # the peers' median changed the rewards
