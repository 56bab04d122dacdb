"""The policy server as a Ray actor: batching, episodes per trial, restart from checkpoint."""

import os
import time

import numpy as np
import pytest
import ray

from distlmk.config import PolicyConfig, SigmaConfig
from distlmk.policy.server import start_policy_server
from distlmk.protocol import OBS_DIM, Move, StepRequest


def request(tid, n_rows=4, rewards=None, truncated=False, seed=0):
    obs = np.random.default_rng(seed).uniform(0, 1, (n_rows, OBS_DIM)).astype(np.float32)
    obs[-1, 0] = 1.0
    rew = None if rewards is None else np.full(n_rows, rewards, np.float32)
    return StepRequest(tid, np.arange(n_rows), obs, rew, np.zeros(n_rows, bool), truncated)


@pytest.fixture
def server(ray_session, tmp_path):
    name = f"srv-{time.time_ns()}"
    cfg = PolicyConfig(train_batch_rows=32, minibatch_size=16, num_epochs=2, batch_wait_ms=5.0)
    handle = start_policy_server(name, cfg, str(tmp_path / "policy"))
    ray.get(handle.ping.remote())
    yield name, handle, tmp_path / "policy"
    ray.kill(handle, no_restart=True)


def test_batched_answers_and_training(server):
    _, srv, _ = server
    refs = [srv.step.remote(request(f"t{i}", seed=i)) for i in range(16)]
    acts = ray.get(refs)
    assert all(a.shape == (4, 2) and a[:, 0].min() >= 0 and a[:, 0].max() < len(Move) for a in acts)
    stats = ray.get(srv.stats.remote())
    assert (
        stats["requests"] == 16 and stats["mean_batch"] > 1
    )  # gathered into shared forward passes
    for step in range(3):
        ray.get(
            [
                srv.step.remote(request(f"t{i}", rewards=1.0, seed=step + i, truncated=step == 2))
                for i in range(16)
            ]
        )
    stats = ray.get(srv.flush_training.remote())
    assert stats["updates"] >= 1 and stats["env_steps"] == 16 * 4 * 3
    assert stats["episodes"] == 64 and stats["open_episodes"] == 0
    assert stats["mean_trial_return"] == pytest.approx(3.0)
    assert {"policy_loss", "vf_loss", "entropy"} <= set(stats["losses"])


def test_end_trial_truncates_open_episode(server):
    _, srv, _ = server
    ray.get(srv.step.remote(request("pbt")))
    ray.get(srv.step.remote(request("pbt", rewards=0.5)))
    assert ray.get(srv.end_trial.remote("pbt")) == 4
    stats = ray.get(srv.stats.remote())
    assert stats["open_episodes"] == 0 and stats["episodes"] == 4
    # the exploited trial starts a new episode; no crash, one open episode per row again
    ray.get(srv.step.remote(request("pbt")))
    assert ray.get(srv.stats.remote())["open_episodes"] == 4


def test_killed_server_restarts_with_saved_weights(server):
    name, srv, ckpt = server
    for step in range(6):
        ray.get(
            [
                srv.step.remote(request(f"k{i}", rewards=None if step == 0 else 0.3, seed=step))
                for i in range(8)
            ]
        )
    ray.get(srv.flush_training.remote())
    ray.get(srv.checkpoint_now.remote())
    before = ray.get(srv.get_weights.remote())
    pid = ray.get(srv.stats.remote())["pid"]
    assert (ckpt / "latest").is_dir()
    os.kill(pid, 9)
    deadline = time.time() + 60
    while True:
        try:
            after_stats = ray.get(ray.get_actor(name).stats.remote(), timeout=30)
            break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    assert after_stats["pid"] != pid and after_stats["restored_from"].endswith("latest")
    after = ray.get(ray.get_actor(name).get_weights.remote())
    for k, v in before.items():
        np.testing.assert_array_equal(v, after[k])
    untrained = start_policy_server(f"{name}-fresh", PolicyConfig(), None)
    fresh = ray.get(untrained.get_weights.remote())
    assert any(not np.array_equal(fresh[k], before[k]) for k in before)
    ray.kill(untrained, no_restart=True)


def test_rl_controller_keeps_sigma_when_policy_missing(ray_session):
    from distlmk.control import EpochFeedback, make_controller

    cfg = SigmaConfig(method="rl", init=3.0)
    cfg.rl.server_name = "no-such-server"
    cfg.rl.timeout_s = 1.0
    c = make_controller(cfg, 3, trial_id="lonely")
    d = c.observe(EpochFeedback(1, 10, np.ones(3), np.ones(3)))
    assert not d.stop and c.failures >= 1
    np.testing.assert_allclose(c.sigma_values(), 3.0)


def post(tid, epoch, err, wait_s=5.0, board="pop"):
    from distlmk.protocol import BoardPost

    return BoardPost(board, tid, epoch, np.array([2.0, 3.0]), np.array(err, float), wait_s=wait_s)


def test_board_waits_for_live_peers_at_the_same_epoch(server):
    """The server answers a post once every known live member posted that epoch (bounded), not
    waiting for members that left or missed a wait; a trial alone gets neutral features."""
    _, srv, _ = server
    alone = ray.get(srv.context.remote(post("a", 1, [1.0, 1.0], board="solo")))
    assert alone.num_peers == 0 and np.all(alone.features == 0)
    ray.get([srv.context.remote(post(t, 1, [1.0, 1.0])) for t in ("a", "b")])  # both known at epoch 1
    early = srv.context.remote(post("a", 2, [1.0, 4.0]))  # b has not posted epoch 2: a waits
    time.sleep(0.5)
    ready, _ = ray.wait([early], timeout=0)
    assert not ready
    ray.get(srv.context.remote(post("b", 2, [2.0, 2.0])))
    ctx = ray.get(early, timeout=10)
    assert ctx.num_peers == 1 and ctx.waited_s >= 0.4
    np.testing.assert_allclose(ctx.peer_median_err, [2.0, 2.0])
    ray.get(srv.leave.remote("b"))  # b is over: nobody waits for it
    t0 = time.time()
    assert ray.get(srv.context.remote(post("a", 3, [1.0, 1.0]))).num_peers == 0 and time.time() - t0 < 2
    ray.get(srv.context.remote(post("c", 3, [1.0, 1.0], wait_s=0.0)))
    t0 = time.time()  # c never posts epoch 4: a waits its bound once, then no more
    assert ray.get(srv.context.remote(post("a", 4, [1.0, 1.0], wait_s=0.5))).num_peers == 0
    assert 0.4 < time.time() - t0
    t0 = time.time()
    ray.get(srv.context.remote(post("a", 5, [1.0, 1.0], wait_s=5.0)))
    assert time.time() - t0 < 2
    assert ray.get(srv.stats.remote())["board"]["timeouts"] == 1


def test_the_first_post_waits_for_the_members_the_plan_announced(server):
    """`expect`: a member's first post waits for announced members that have never posted (it used to
    answer alone at once), is released when they post, and a timeout stops the waiting for good."""
    _, srv, _ = server
    ray.get(srv.expect.remote({"planned": 2, "late": 3}))
    first = srv.context.remote(post("a", 1, [1.0, 4.0], board="planned"))
    time.sleep(0.5)
    assert not ray.wait([first], timeout=0)[0]  # b was announced, not seen: a waits
    ray.get(srv.context.remote(post("b", 1, [2.0, 2.0], board="planned")))
    assert ray.get(first, timeout=10).num_peers == 1  # released by b's post, with b as its peer
    t0 = time.time()  # two of "late"'s three never post: one wait runs its bound, then none
    assert ray.get(srv.context.remote(post("x", 1, [1.0, 1.0], wait_s=0.5, board="late"))).num_peers == 0
    assert time.time() - t0 > 0.4
    t0 = time.time()
    ray.get(srv.context.remote(post("x", 2, [1.0, 1.0], wait_s=5.0, board="late")))
    assert time.time() - t0 < 2


def test_one_call_decision_posts_completes_and_acts(server):
    """`decide`: the post goes on the board (a later member sees it as a peer), the answer's context
    is the board's, and the step the policy books is the one completed from that context."""
    from distlmk.protocol import BOARD_FEATURES, BoardPost, DecisionRequest, Feature, PeerReward

    _, srv, _ = server

    def decision(tid, epoch, err, rewards=None, prev_rel=None):
        obs = np.zeros((3, OBS_DIM), np.float32)
        obs[-1, 0] = 1.0
        peer = None if prev_rel is None else PeerReward(np.asarray(prev_rel, float), 10.0, 0.0)
        return DecisionRequest(BoardPost("one-call", tid, epoch, np.array([2.0, 4.0]), np.array(err, float),
                                         wait_s=0.0),
                               np.arange(3), obs, rewards, np.zeros(3, bool), False, peer)

    first = ray.get(srv.decide.remote(decision("a", 1, [1.0, 2.0])))
    assert first.context.num_peers == 0 and first.actions.shape == (3, 2)
    second = ray.get(srv.decide.remote(decision("b", 1, [2.0, 2.0])))
    assert second.context.num_peers == 1  # a's post is on the board
    np.testing.assert_allclose(second.context.peer_median_err, [1.0, 2.0])
    assert second.context.features[0, BOARD_FEATURES.index(Feature.ERR_VS_BEST)] == pytest.approx(np.log(2.0))
    # a's next decision: the peer reward is finished on the server from b's error at epoch 2
    ray.get(srv.decide.remote(decision("b", 2, [2.0, 2.0], np.zeros(3, np.float32))))
    req = decision("a", 2, [1.0, 1.0], np.zeros(3, np.float32), prev_rel=[0.0, 0.0])
    answer = ray.get(srv.decide.remote(req))
    want = req.rewards_given(answer.context)  # 10 * (0 - log(err / median)) on each landmark
    np.testing.assert_allclose(want[:2], [-10 * np.log(1 / 2), -10 * np.log(1 / 2)], rtol=1e-6)
    ray.get(srv.end_trial.remote("a"))  # a's 3 episodes close with the one reward the server booked
    stats = ray.get(srv.stats.remote())
    assert stats["episodes"] == 3 and stats["open_episodes"] == 3  # b's still open
    assert stats["mean_landmark_return"] == pytest.approx(want[:2].mean(), rel=1e-5)
    assert stats["mean_trial_return"] == pytest.approx(want[2], rel=1e-5)
    assert want[0] != pytest.approx(0.0)  # the own-form rewards sent were 0: the server finished them
