"""The population's board: features against peers at the same epoch, restarts, landmark_pbt,
the cold-start design, and the board through the in-process transport and `RLSigma`."""

import math

import numpy as np
import pytest

from distlmk.config import LandmarkPBTConfig, RLControlConfig, SigmaConfig
from distlmk.control import EpochFeedback, make_controller
from distlmk.control.landmark_pbt import latin_sigmas
from distlmk.policy.board import Board, donor_draw, landmark_pbt_sigma
from distlmk.policy.local import FixedActionTransport
from distlmk.protocol import BOARD_FEATURES, PEER_COUNT_SCALE, BoardPost, Feature, PBTRule

COL = {f: i for i, f in enumerate(BOARD_FEATURES)}


def ctx(board, tid, epoch, sigma, err, quantile=0.25):
    board.post(tid, epoch, sigma, err)
    return board.context(BoardPost("p", tid, epoch, np.asarray(sigma, float), np.asarray(err, float), quantile))


def test_features_against_peers_at_the_same_epoch_only():
    b = Board()
    # peers at epoch 2 (landmark 0: errors 1, 2, 4; landmark 1: 8, 4, 2), and distractors at other epochs
    for tid, s, e in (("a", [1.0, 4.0], [1.0, 8.0]), ("b", [2.0, 2.0], [2.0, 4.0]), ("c", [4.0, 1.0], [4.0, 2.0])):
        b.post(tid, 2, s, e)
    b.post("late", 5, [8.0, 8.0], [0.01, 0.01])  # asynchronous: other epochs are no peers
    b.post("early", 1, [8.0, 8.0], [100.0, 100.0])
    c = ctx(b, "me", 2, [2.0, 2.0], [2.0, 2.0], quantile=0.34)  # top quantile of 3 peers: the best one
    f = c.features
    assert c.num_peers == 3
    np.testing.assert_allclose(c.peer_median_err, [2.0, 4.0])
    np.testing.assert_allclose(f[:, COL[Feature.ERR_VS_MEDIAN]], np.log([2 / 2, 2 / 4]), atol=1e-6)
    np.testing.assert_allclose(f[:, COL[Feature.ERR_VS_BEST]], np.log([2 / 1, 2 / 2]), atol=1e-6)
    np.testing.assert_allclose(f[:, COL[Feature.SIGMA_VS_TOP]], np.log([2 / 1, 2 / 1]), atol=1e-6)  # a on 0, c on 1
    np.testing.assert_allclose(f[:, COL[Feature.SIGMA_SPREAD]], np.std(np.log([1, 2, 4])), atol=1e-6)
    np.testing.assert_allclose(f[:, COL[Feature.PEER_COUNT]], math.log1p(3) / math.log1p(PEER_COUNT_SCALE), atol=1e-6)
    # a top quantile of two peers: the geometric mean of their sigmas
    f2 = ctx(b, "me", 2, [2.0, 2.0], [2.0, 2.0], quantile=0.5).features
    np.testing.assert_allclose(f2[:, COL[Feature.SIGMA_VS_TOP]], np.log(2 / np.sqrt(2)), atol=1e-6)


def test_a_trial_alone_gets_neutral_features():
    b = Board()
    b.post("other", 3, [1.0], [1.0])  # another epoch
    c = ctx(b, "me", 2, [2.0], [5.0])
    assert c.num_peers == 0 and np.all(c.features == 0) and np.isnan(c.peer_median_err).all()


def test_a_restarted_trial_replaces_its_stale_rows():
    b = Board()
    for epoch in (1, 2, 3):
        b.post("r", epoch, [1.0], [10.0 + epoch])
        b.post("peer", epoch, [2.0], [5.0])
    b.post("r", 2, [4.0], [1.0])  # restarted from its epoch-1 checkpoint (retry / PBT exploit), posts epoch 2 again
    ids, sigma, err = b.members(2)
    assert ids == ["peer", "r"] and err[:, 0].tolist() == [5.0, 1.0]  # one row each: the new one
    assert b.members(3)[0] == ["peer"]  # its abandoned future is gone
    assert b.peers("peer", 2, 1)[1].tolist() == [[1.0]]
    assert b.latest("r") == 2 and b.waiting_for(3, "peer") == ["r"]


def test_expected_members_are_waited_for_before_they_first_post_until_a_wait_times_out():
    b = Board()
    b.expected = 3  # the plan's population: a, b, c
    b.post("a", 2, [1.0], [1.0])
    assert b.waiting_for(2, "a") == [] and b.num_waiting(2, "a") == 2  # b and c not seen yet: still waited for
    b.post("b", 2, [1.0], [1.0])
    assert b.num_waiting(2, "a") == 1 and b.num_waiting(2) == 1
    b.mark_missed(b.waiting_for(2, "a"))  # the wait timed out (c may not have started): never waited for again
    assert b.num_waiting(2) == 0 and b.waiting_for(4, "a") == ["b"] and b.num_waiting(4, "a") == 1  # not c
    b.post("c", 2, [1.0], [1.0])
    assert b.unseen() == 0 and b.num_waiting(2) == 0


def test_waiting_for_skips_members_that_left_missed_or_are_ahead():
    b = Board()
    for t, e in (("a", 1), ("b", 1), ("c", 3), ("d", 1)):
        b.post(t, e, [1.0], [1.0])
    b.leave("b")
    b.mark_missed(["d"])
    assert b.waiting_for(2, "me") == ["a"]  # b ended, c is past epoch 2, d missed an earlier wait
    b.post("d", 2, [1.0], [1.0])
    assert "d" not in b.missed and b.waiting_for(2, "me") == ["a"]


def test_landmark_pbt_rule_bottom_members_take_a_top_sigma_times_a_perturbation():
    peers_sigma = np.array([[1.0, 6.0], [2.0, 5.0], [3.0, 4.0]])
    peers_err = np.array([[1.0, 9.0], [2.0, 8.0], [3.0, 1.0]])
    rule = PBTRule(quantile=0.25, perturb=(0.8, 1.25), lo=1.0, hi=8.0)
    # members: 3 peers + this one -> k = 1. Landmark 0: this member (err 5) is the worst -> takes the best
    # peer's sigma (1.0) x 0.8 or 1.25, clipped to >= 1; landmark 1: err 2 is second best -> keeps 7.0
    seen = set()
    for seed in range(20):
        out, taken = landmark_pbt_sigma(np.array([7.0, 7.0]), np.array([5.0, 2.0]), peers_sigma, peers_err, rule,
                                        np.random.default_rng(seed))
        assert taken.tolist() == [True, False] and out[1] == 7.0
        seen.add(round(out[0], 6))
    assert seen == {1.0, 1.25}  # 1.0 * 0.8 clipped to the minimum, 1.0 * 1.25
    # the top member keeps everything; a member alone keeps everything
    out, taken = landmark_pbt_sigma(np.array([7.0, 7.0]), np.array([0.5, 0.5]), peers_sigma, peers_err, rule,
                                    np.random.default_rng(0))
    assert not taken.any() and out.tolist() == [7.0, 7.0]
    out, taken = landmark_pbt_sigma(np.array([7.0]), np.array([9.0]), np.zeros((0, 1)), np.zeros((0, 1)), rule,
                                    np.random.default_rng(0))
    assert not taken.any() and out.tolist() == [7.0]
    # with a larger bottom quantile (k = 2 of 4) a donor is either of the two best on that landmark
    donors = set()
    for seed in range(40):
        out, _ = landmark_pbt_sigma(np.array([7.0, 7.0]), np.array([5.0, 9.0]), peers_sigma, peers_err,
                                    PBTRule(0.5, (1.0,), 1.0, 8.0), np.random.default_rng(seed))
        donors.add((out[0], out[1]))
    assert {d[0] for d in donors} == {1.0, 2.0} and {d[1] for d in donors} == {4.0, 5.0}


def test_latin_sigmas_cover_every_stratum_once_per_landmark():
    n, L, lo, hi = 7, 5, 1.0, 8.0
    s = latin_sigmas(n, L, lo, hi, seed=3)
    assert s.shape == (n, L) and np.all((s > lo) & (s < hi))
    strata = np.floor((np.log(s) - np.log(lo)) / (np.log(hi) - np.log(lo)) * n).astype(int)
    for lm in range(L):
        assert sorted(strata[:, lm]) == list(range(n))  # each stratum exactly once
    assert len({tuple(strata[:, lm]) for lm in range(L)}) > 1  # shuffled independently per landmark
    np.testing.assert_array_equal(s, latin_sigmas(n, L, lo, hi, seed=3))


def test_rl_members_read_each_other_through_the_in_process_transport():
    """RLSigma end to end through an in-process transport: each member's rows carry the board's
    features against the other members at the same epoch; the peer reward cancels their common trend."""
    transport = FixedActionTransport("keep")
    seen = []
    step = transport.step

    def spy(req):
        seen.append(req)
        return step(req)

    transport.step = spy
    cfg = SigmaConfig(method="rl", min=1.0, max=8.0, rl=RLControlConfig(reward="peer", min_progress_to_stop=1.1))
    members = []
    for i, s in enumerate((1.0, 2.0, 4.0)):
        c = SigmaConfig(**{**cfg.__dict__, "per_landmark": [s, s]})
        members.append(make_controller(c, 2, trial_id=f"m{i}", transport=transport))
    base = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])  # member i's error; everyone's falls by half per epoch
    for epoch in (1, 2, 3):
        err = base * 0.5 ** epoch
        for i, m in enumerate(members):  # all members' epoch on the board first, as a lockstep population
            transport.boards.post(BoardPost("rl", m.trial_id, epoch, m.sigma_values(), err[i]))
        decisions = [m.observe(EpochFeedback(epoch, 4, err[i], np.ones(2))) for i, m in enumerate(members)]
    last = seen[-3:]
    m0 = last[0].obs
    assert m0.shape == (3, len(Feature))
    np.testing.assert_allclose(m0[:2, Feature.ERR_VS_BEST], np.log([1 / 2, 3 / 1]), atol=1e-5)
    np.testing.assert_allclose(m0[:2, Feature.SIGMA_VS_TOP], np.log([1 / 2, 1 / 4]), atol=1e-5)
    assert np.all(m0[:2, Feature.PEER_COUNT] > 0) and m0[2, Feature.IS_TRIAL_ROW] == 1
    for req in last:  # a common trend only: every landmark's peer reward is 0
        np.testing.assert_allclose(req.rewards[:2], 0.0, atol=1e-5)
    assert all(d.reward == pytest.approx(-0.01) for d in decisions)  # the trial row: only the epoch cost
    for m in members:
        m.close()
    assert transport.boards["rl"].left == {"m0", "m1", "m2"}


def test_landmark_pbt_controller_through_the_in_process_transport():
    transport = FixedActionTransport("keep")
    cfg = SigmaConfig(method="landmark_pbt", min=1.0, max=8.0,
                      landmark_pbt=LandmarkPBTConfig(interval=2, quantile=0.25, perturb=[1.0]))
    members = [make_controller(SigmaConfig(**{**cfg.__dict__, "per_landmark": [s]}), 1, f"p{i}", transport)
               for i, s in enumerate((1.5, 3.0, 6.0, 7.0))]
    errs = [1.0, 2.0, 3.0, 4.0]
    for epoch in (1, 2):
        for i, m in enumerate(members):
            transport.boards.post(BoardPost("landmark_pbt", m.trial_id, epoch, m.sigma_values(), [errs[i]]))
        for i, m in enumerate(members):
            m.observe(EpochFeedback(epoch, 10, np.array([errs[i]]), np.ones(1)))
    # epoch 1: no decision (interval 2); epoch 2: the worst member (k = 1 of 4) took the best one's sigma
    np.testing.assert_allclose([m.sigma_values()[0] for m in members], [1.5, 3.0, 6.0, 1.5])
    assert [m.exploits for m in members] == [0, 0, 0, 1]
    state = members[3].state_dict()
    again = make_controller(cfg, 1, "p3", transport)
    again.load_state_dict(state)
    assert again.exploits == 1 and again.sigma_values()[0] == pytest.approx(1.5)


def test_a_landmark_pbt_population_runs_in_a_search_on_the_policy_servers_board(ray_session, tmp_path):
    """landmark_pbt alone in a search: the server starts (boards, no warm start), members start from
    a Latin-hypercube design, post every `interval` epochs, and bottom members take top members' sigmas.
    Run again, the population moves exactly as before: the rule's draws are keyed by the plan, and the
    first posts wait for the members the plan announced, not only for those already seen."""
    import json

    import pandas as pd

    from distlmk import schema as S
    from distlmk.config import SearchConfig, from_dict
    from distlmk.population.search import run_search

    starts = latin_sigmas(4, 3, 1.0, 8.0, seed=0)
    variants = [{"name": f"lpbt{i}", "method": "landmark_pbt",
                 "sigma": {"per_landmark": starts[i].tolist(), "landmark_pbt": {"interval": 2, "quantile": 0.25}}}
                for i in range(4)]
    cfg = from_dict(SearchConfig, {
        "name": "lpbt", "simulation": {"enabled": True}, "seeds": [0], "methods": [], "variants": variants,
        "experiment": {"data": {"num_landmarks": 3}, "train": {"epochs": 6},
                       "sigma": {"rl": {"peer_wait_s": 60.0}}},  # a slow start on a loaded machine is still waited for
        "resources": {"cpu": 0.5},
        "max_failures": 0, "policy": {"pretrain_rounds": 3},
    }, "test")
    runs = [run_search(cfg, str(tmp_path / f"run{i}"), quiet=True) for i in range(2)]
    assert [out.num_errors for out in runs] == [0, 0]
    recs = [pd.read_parquet(out.exp_dir / "records.parquet").sort_values([S.VARIANT, S.EPOCH]) for out in runs]
    rec = recs[0]
    changed = [not np.allclose(a, b) for a, b in zip(rec[S.SIGMA_USED], rec[S.SIGMA_NEXT], strict=True)]
    epochs_changed = set(rec.loc[changed, S.EPOCH])
    assert epochs_changed and epochs_changed <= {2, 4}  # only on the rule's epochs (not the last)
    assert set(recs[0][S.TRIAL_ID]).isdisjoint(recs[1][S.TRIAL_ID])  # new trial ids, the same moves:
    np.testing.assert_array_equal(np.stack(recs[0][S.SIGMA_NEXT]), np.stack(recs[1][S.SIGMA_NEXT]))
    stats = json.loads((runs[0].exp_dir / "policy_stats.json").read_text())
    assert stats["board"]["populations"] == 1 and stats["updates"] == 0 and "warm start" not in str(
        stats["restored_from"])


def _features_by_sorting(sigma, err, peer_sigma, peer_err, quantile):
    """The board features' definition, written with a stable sort (what the partitions must equal)."""
    n = len(peer_err)
    pe, log_ps = np.maximum(peer_err, 1e-6), np.log(peer_sigma)
    top = np.argsort(pe, axis=0, kind="stable")[:max(1, min(round(quantile * n), n))]
    e = np.maximum(err, 1e-6)
    return np.stack([np.log(e / np.median(pe, axis=0)), np.log(e / pe.min(axis=0)),
                     np.log(sigma) - np.take_along_axis(log_ps, top, axis=0).mean(axis=0),
                     log_ps.std(axis=0), np.full(len(err), math.log1p(n) / math.log1p(PEER_COUNT_SCALE))], axis=1)


def test_the_incremental_board_equals_its_definition_with_ties_restarts_and_mixed_landmark_counts():
    """Each epoch's matrices are kept up to date by every post (no restacking from rows) and the
    features come from one sort of the epoch with each member's own position skipped: the answers
    equal a stable sort over a rebuild of the peers, ties included."""
    rng = np.random.default_rng(0)
    b = Board()
    for _ in range(400):
        tid, epoch = f"t{rng.integers(0, 12)}", int(rng.integers(1, 4))
        lm = 3 if rng.random() > 0.03 else 4  # now and then a member with another landmark count
        err = rng.integers(1, 4, lm).astype(float)  # few distinct values: ties at the median and the k-th
        sigma = rng.choice([1.0, 2.0, 4.0, 8.0], lm)
        quantile = float(rng.choice([0.1, 0.25, 0.5, 1.0]))
        c = ctx(b, tid, epoch, sigma, err, quantile)
        rows = b.by_epoch[epoch]
        keep = [t for t in sorted(rows) if t != tid and len(rows[t][1]) == lm]
        assert c.num_peers == len(keep)
        if keep:
            ps, pe = np.array([rows[t][0] for t in keep]), np.array([rows[t][1] for t in keep])
            np.testing.assert_allclose(c.features, _features_by_sorting(sigma, err, ps, pe, quantile), atol=1e-6)
            np.testing.assert_allclose(c.peer_median_err, np.median(np.maximum(pe, 1e-6), axis=0))
            np.testing.assert_array_equal(np.column_stack(b.peers(tid, epoch, lm)), np.column_stack([ps, pe]))
            # ADOPT's donor: the peer of rank floor(draw * k) in a stable sort of the peers' errors on l
            k = max(1, min(round(quantile * len(keep)), len(keep)))
            rank = np.floor(donor_draw(BoardPost("p", tid, epoch, sigma, err), lm) * k).astype(int)
            order = np.argsort(np.maximum(pe, 1e-6), axis=0, kind="stable")
            np.testing.assert_allclose(c.donor_sigma, ps[order[rank, np.arange(lm)], np.arange(lm)])


def test_a_flush_of_posts_gets_the_same_contexts_as_one_post_at_a_time():
    """`Boards.contexts` (the server's flush: one pass per epoch for every member in it) answers
    exactly what `context` answers post by post, with ties, restarts, mixed landmark counts, a
    member whose post was replaced since, and a member alone at its epoch."""
    from distlmk.policy.board import Boards

    rng = np.random.default_rng(1)
    boards = Boards()
    for round_ in range(40):
        posts = []
        for _ in range(int(rng.integers(1, 14))):
            tid, epoch = f"t{rng.integers(0, 12)}", int(rng.integers(1, 4))
            lm = 3 if rng.random() > 0.05 else 4
            err = rng.integers(1, 4, lm).astype(float)  # few distinct values: ties everywhere
            sigma = rng.choice([1.0, 2.0, 4.0, 8.0], lm)
            p = BoardPost(f"pop{round_ % 2}", tid, epoch, sigma, err, float(rng.choice([0.1, 0.25, 0.5, 1.0])))
            boards.post(p)
            posts.append(p)
        batched = boards.contexts(posts)
        for p, got in zip(posts, batched, strict=True):
            want = boards[p.board].context(p)
            assert got.num_peers == want.num_peers
            np.testing.assert_allclose(got.features, want.features, atol=1e-6)
            np.testing.assert_allclose(got.peer_median_err, want.peer_median_err)
            np.testing.assert_allclose(got.donor_sigma, want.donor_sigma)
    alone = Boards()
    p = BoardPost("solo", "only", 1, np.ones(2), np.ones(2))
    alone.post(p)
    (c,) = alone.contexts([p])
    assert c.num_peers == 0 and np.all(c.features == 0) and np.all(np.isnan(c.peer_median_err))
    np.testing.assert_array_equal(c.donor_sigma, p.sigma)  # alone: ADOPT keeps


def test_the_wait_count_equals_the_waiting_list_through_restarts_leaves_and_misses():
    """The server's hot path counts who it waits for (`num_waiting`, per-epoch counts) instead of
    listing them: the count equals `waiting_for`'s list after every kind of board change."""
    rng = np.random.default_rng(2)
    b = Board()
    for _ in range(500):
        tid = f"t{rng.integers(0, 10)}"
        op = rng.random()
        if op < 0.7:
            b.post(tid, int(rng.integers(1, 6)), np.ones(2), np.ones(2))  # restarts post earlier epochs too
        elif op < 0.85:
            b.leave(tid)
        else:
            b.mark_missed([tid, f"t{rng.integers(0, 10)}"])
        for epoch in range(0, 8):
            for who in (None, tid, "stranger"):
                assert b.num_waiting(epoch, who) == len(b.waiting_for(epoch, who))


def test_the_landmark_pbt_rule_draws_by_member_not_by_trial_id():
    """A rerun of the same population (same members, new Tune trial ids) draws the same rule moves;
    before, the draws were keyed by the trial id and a rerun drew anew."""
    from distlmk.policy.rollout import rollout

    cfg = SigmaConfig(method="rl", init=2.5, landmark_pbt=LandmarkPBTConfig(interval=1))
    first, rerun = (rollout("landmark_pbt", cfg, 12, 4, 6, seed=3, tag=tag) for tag in ("run1_", "rerun_"))
    np.testing.assert_array_equal(first.final_err, rerun.final_err)
    board = Board()
    for i, e in enumerate((2.0, 1.0, 0.5)):
        board.post(f"peer{i}", 2, np.full(4, 1.0 + i), np.full(4, e))
    board.post("me", 2, np.ones(4), np.full(4, 3.0))  # the worst on every landmark: it exploits each

    def draw(member: int) -> tuple:
        rule = PBTRule(0.5, (0.8, 1.25), 0.5, 8.0, 0)
        post = BoardPost("p", "me", 2, np.ones(4), np.full(4, 3.0), rule=rule, member=member)
        return tuple(board.context(post).sigma_next)

    assert draw(7) == draw(7) and draw(7) != draw(8)  # the member keys the draw
