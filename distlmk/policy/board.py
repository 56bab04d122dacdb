"""The population's board: every member's sigma_l and validation error on l by epoch (numpy only).

The policy server holds one `Board` per population (`Boards`); members post through the
transport (`distlmk.protocol.BoardPost`) and get their features against the **peers at the
same epoch**: the other members that posted exactly that epoch. Members at other epochs are
ignored, so an asynchronous population never compares an early epoch with a late one.

A member that restarts (a retry, a PBT exploit) and posts an epoch it posted before replaces
its rows from that epoch on: no row counts twice, and nothing it posted in its abandoned
future stays on the board.

Each answer also names ADOPT's donor per landmark (`BoardContext.donor_sigma`): one of the peers
that do best on l, drawn per member and epoch (`donor_draw`), as the landmark_pbt rule draws its
donor. `landmark_pbt_sigma` is the landmark_pbt rule, a pure function of the board.
"""

from __future__ import annotations

import bisect
import math
import zlib

import numpy as np

from distlmk.protocol import BOARD_DIM, BOARD_FEATURES, PEER_COUNT_SCALE, BoardContext, BoardPost, Feature, PBTRule

_COL = {f: i for i, f in enumerate(BOARD_FEATURES)}


def top_count(n: int, quantile: float, disjoint: bool = False) -> int:
    """How many of n members form a top (or bottom) quantile: round(quantile * n), at least 1;
    `disjoint`: at most n // 2, so a top and a bottom of that size never overlap."""
    if n < 1:
        return 0
    return max(1, min(int(round(quantile * n)), n // 2 if disjoint else n))


def peer_features(sigma: np.ndarray, err: np.ndarray, peer_sigma: np.ndarray, peer_err: np.ndarray,
                  quantile: float) -> np.ndarray:
    """Board features [L, BOARD_DIM] of one member (sigma, err [L]) against peers ([n, L] each)."""
    peer_err = np.asarray(peer_err, float)
    log_ps = np.log(np.asarray(peer_sigma, float).T) if len(peer_err) else np.zeros((len(err), 0))
    return _features(np.asarray(sigma, float), np.asarray(err, float), log_ps, np.maximum(peer_err.T, 1e-6),
                     quantile)[0]


def _features(sigma: np.ndarray, err: np.ndarray, log_ps: np.ndarray, pe: np.ndarray, quantile: float,
              draw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`peer_features` on landmark-major peers (log sigma, error floored at 1e-6: [L, n] each, C order),
    the peers' median error [L] (nan without peers) and ADOPT's donor log sigma [L]: the peer of rank
    floor(draw * k) among the k best on l (`draw` [L] in [0, 1); None: the best; no peers: its own)."""
    num_landmarks, n = pe.shape
    out = np.zeros((num_landmarks, BOARD_DIM), np.float32)
    if n == 0:
        return out, np.full(num_landmarks, np.nan), np.log(sigma)
    e = np.maximum(err, 1e-6)
    k = top_count(n, quantile)
    lms = np.arange(num_landmarks)
    rank = _donor_rank(draw, k, (num_landmarks,))
    donor = log_ps[lms, np.argsort(pe, axis=1, kind="stable")[lms, rank]]  # ties in peer order, as `top` below
    mid = sorted({(n - 1) // 2, n // 2})
    part = np.partition(pe, sorted({*mid, k - 1}), axis=1)
    median = part[:, mid].mean(axis=1) if len(mid) == 2 else part[:, mid[0]]  # = np.median(pe, axis=1)
    # the k lowest errors on each landmark, ties taken in peer order (= a stable argsort's first k)
    kth = part[:, k - 1 : k]
    top = pe <= kth
    if top.sum() > k * num_landmarks:  # ties at the k-th error: only the first of them in peer order
        below, tied = pe < kth, pe == kth
        top = below | (tied & (np.cumsum(tied, axis=1) <= k - below.sum(axis=1, keepdims=True)))
    top_log_sigma = np.where(top, log_ps, 0.0).sum(axis=1) / k
    out[:, _COL[Feature.ERR_VS_MEDIAN]] = np.log(e / median)
    out[:, _COL[Feature.ERR_VS_BEST]] = np.log(e / pe.min(axis=1))
    out[:, _COL[Feature.SIGMA_VS_TOP]] = np.log(sigma) - top_log_sigma
    out[:, _COL[Feature.SIGMA_SPREAD]] = log_ps.std(axis=1) if n > 1 else 0.0
    out[:, _COL[Feature.PEER_COUNT]] = math.log1p(n) / math.log1p(PEER_COUNT_SCALE)
    return out, median, donor


def _donor_rank(draw: np.ndarray | None, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Rank among a member's peers (0: the best) of ADOPT's donor: floor(draw * k), within [0, k)."""
    if draw is None:
        return np.zeros(shape, int)
    return np.minimum(np.floor(np.asarray(draw) * k).astype(int), k - 1)


def _lowest(e: np.ndarray, part: np.ndarray, j: int) -> np.ndarray:
    """[L, n] mask of the j lowest errors per landmark in stable (peer) order; `part` is `e` sorted."""
    v = part[:, j - 1 : j]
    if j == e.shape[1] or np.all(v[:, 0] < part[:, j]):  # no tie across the j-th lowest (the usual case)
        return e <= v
    below, tied = e < v, e == v
    return below | (tied & (np.cumsum(tied, axis=1) <= j - below.sum(axis=1, keepdims=True)))


def _members_features(log_s: np.ndarray, e: np.ndarray, cols: np.ndarray, quantile: float,
                      draw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_features` of several members of one epoch at once, each against all the others: the epoch's
    log sigma and floored error [L, n] (peer order), the members' columns `cols` [b], their donor
    draws [b, L]. Returns features [b, L, BOARD_DIM], the peers' median error [b, L] and ADOPT's donor
    log sigma [b, L].

    A member's peers are the epoch without it, so every order statistic it needs is the epoch's
    j-th or (j+1)-th lowest, by whether it is itself among the epoch's j lowest (stable order, as
    `_features` breaks ties). One sort of the epoch serves the whole batch: O(n L log n) once,
    then O(L) per member, where a post at a time costs O(n L) each."""
    num_landmarks, n = e.shape
    b, m = len(cols), n - 1  # m peers each
    out = np.zeros((b, num_landmarks, BOARD_DIM), np.float32)
    if m == 0:
        return out, np.full((b, num_landmarks), np.nan), log_s[:, cols].T.copy()
    k = top_count(m, quantile)
    mids = sorted({(m - 1) // 2, m // 2})
    order = np.argsort(e, axis=1, kind="stable")  # [L, n] (one sort is faster than a partition at several places)
    part = np.take_along_axis(e, order, axis=1)
    own_e, own_ls = e[:, cols].T, log_s[:, cols].T  # [b, L]
    lowest = {j: _lowest(e, part, j) for j in (k, k + 1)}  # the top quantile's members, with and without a member

    def among(j: int) -> np.ndarray:  # [b, L]: the member is among the epoch's j lowest
        if j in lowest:
            return lowest[j][:, cols].T
        if np.all(part[:, j - 1] < part[:, j]):  # no tie across the j-th lowest: compare values
            return own_e <= part[:, j - 1][None, :]
        return _lowest(e, part, j)[:, cols].T

    def peer_low(p: int) -> np.ndarray:  # [b, L] the (p+1)-th lowest error among a member's peers
        return np.where(among(p + 1), part[:, p + 1][None, :], part[:, p][None, :])

    median = sum(peer_low(p) for p in mids) / len(mids)
    top_k, top_k1 = (np.einsum("ln,ln->l", lowest[j], log_s)[None, :] for j in (k, k + 1))
    top_sum = np.where(among(k), top_k1 - own_ls, top_k)
    mu = log_s.mean(axis=1)  # spread without itself, centred for accuracy
    dev = log_s - mu[:, None]
    dev2 = np.einsum("ln,ln->l", dev, dev)
    var = (dev2[None, :] - (own_ls - mu[None, :]) ** 2) / m - ((mu[None, :] - own_ls) / m) ** 2
    out[..., _COL[Feature.ERR_VS_MEDIAN]] = np.log(own_e / median)
    out[..., _COL[Feature.ERR_VS_BEST]] = np.log(own_e / peer_low(0))
    out[..., _COL[Feature.SIGMA_VS_TOP]] = own_ls - top_sum / k
    out[..., _COL[Feature.SIGMA_SPREAD]] = np.sqrt(np.maximum(var, 0.0)) if m > 1 else 0.0
    out[..., _COL[Feature.PEER_COUNT]] = math.log1p(m) / math.log1p(PEER_COUNT_SCALE)
    # the donor: the peer of rank j is the epoch's j-th lowest, or the (j+1)-th if the member ranks at or above it
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), order.shape), axis=1)
    j = _donor_rank(draw, k, (b, num_landmarks))
    pos = np.where(rank[:, cols].T > j, j, j + 1)
    lms = np.arange(num_landmarks)[None, :]
    return out, median, log_s[lms, order[lms, pos]]


class _Epoch:
    """Everyone at one epoch as landmark-major matrices in trial-id order (`sigma`, `err`: [L, n],
    `ids`). A post writes its column into arrival-order storage that grows by doubling (O(L)); the
    id-order matrices are rebuilt on the first read after a post and are never written in place,
    so what `members` handed out stays as it was."""

    def __init__(self, ids: list[str], sigma: np.ndarray, err: np.ndarray) -> None:
        n = len(ids)
        self.ids = list(ids)  # sorted trial ids
        self._cols = list(range(n))  # arrival-order column of each of `ids`
        self._where = {t: i for i, t in enumerate(ids)}  # trial id -> arrival-order column
        self._s = np.array(sigma, float, copy=True, ndmin=2)
        self._e = np.array(err, float, copy=True, ndmin=2)
        self._n = n
        self._view: tuple[np.ndarray, np.ndarray] | None = (self._s[:, :n].copy(), self._e[:, :n].copy())

    @property
    def sigma(self) -> np.ndarray:
        return self._read()[0]

    @property
    def err(self) -> np.ndarray:
        return self._read()[1]

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        if self._view is None:
            order = np.asarray(self._cols, np.intp)
            self._view = (self._s[:, order], self._e[:, order])
        return self._view

    def put(self, trial_id: str, sigma: np.ndarray, err: np.ndarray) -> bool:
        """Book one member's column; False if its landmark count differs (the caller drops this cache)."""
        if not self.ids and self._e.shape[0] != len(err):  # an epoch read before anyone posted it
            self._s, self._e = np.zeros((len(err), 4)), np.zeros((len(err), 4))
        if len(err) != self._e.shape[0]:
            return False
        col = self._where.get(trial_id)
        if col is None:
            if self._n == self._e.shape[1]:  # full: double the storage
                grow = max(4, self._n)
                self._s = np.concatenate([self._s, np.zeros((len(err), grow))], axis=1)
                self._e = np.concatenate([self._e, np.zeros((len(err), grow))], axis=1)
            col = self._where[trial_id] = self._n
            self._n += 1
            i = bisect.bisect_left(self.ids, trial_id)
            self.ids.insert(i, trial_id)
            self._cols.insert(i, col)
        self._s[:, col], self._e[:, col] = sigma, err
        self._view = None
        return True

    def others(self, trial_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Every column but `trial_id`'s: (sigma, err [L, n]) copies."""
        sigma, err = self._read()
        i = bisect.bisect_left(self.ids, trial_id)
        if i < len(self.ids) and self.ids[i] == trial_id:
            return np.delete(sigma, i, axis=1), np.delete(err, i, axis=1)
        return sigma.copy(), err.copy()


class Board:
    """One population's rows: (trial, epoch) -> (sigma [L], err [L])."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self.epochs: dict[str, set[int]] = {}  # epochs each member has on the board
        self.left: set[str] = set()  # members that ended: never waited for again
        self.missed: set[str] = set()  # members a wait timed out on: not waited for until they post
        self._latest: dict[str, int] = {}  # each member's last epoch on the board
        self._stacks: dict[int, _Epoch | None] = {}  # built on first read, then kept up to date; None: mixed L
        self._live_at: dict[int, int] = {}  # last epoch -> how many live members (not left, not missed) have it
        self.expected = 0  # members the search's plan puts on this board (0: not told; only posters are known)
        self.unseen_missed = False  # a wait timed out while expected members had never posted: not waited for again

    # --- writing ------------------------------------------------------------------------
    def post(self, trial_id: str, epoch: int, sigma, err) -> None:
        """Book a member's state at `epoch`; its rows from `epoch` on (a restart's stale future) go."""
        epoch = int(epoch)
        mine = self.epochs.setdefault(trial_id, set())
        for e in [e for e in mine if e >= epoch]:
            del self.by_epoch[e][trial_id]
            self._stacks.pop(e, None)
            mine.discard(e)
        row = (np.asarray(sigma, float).copy(), np.asarray(err, float).copy())
        self.by_epoch.setdefault(epoch, {})[trial_id] = row
        stack = self._stacks.get(epoch)
        if stack is not None and not stack.put(trial_id, *row):
            self._stacks[epoch] = None
        mine.add(epoch)
        self._not_live(trial_id)
        self._latest[trial_id] = epoch  # every later row went above
        self.left.discard(trial_id)
        self.missed.discard(trial_id)
        self._live_at[epoch] = self._live_at.get(epoch, 0) + 1

    def _live(self, trial_id: str) -> bool:
        return trial_id in self._latest and trial_id not in self.left and trial_id not in self.missed

    def _not_live(self, trial_id: str) -> None:
        """Take a live member out of the counts (it posts anew, leaves, or is missed)."""
        if self._live(trial_id):
            self._live_at[self._latest[trial_id]] -= 1

    def leave(self, trial_id: str) -> None:
        """The member ended: its rows stay (peers at those epochs), nobody waits for it."""
        if trial_id in self.epochs:
            self._not_live(trial_id)
            self.left.add(trial_id)

    def mark_missed(self, trial_ids) -> None:
        """A wait timed out on these members: not waited for again until they post. The expected members
        that have never posted are not waited for again either (they may not have started)."""
        for t in set(trial_ids):
            self._not_live(t)
            self.missed.add(t)
        self.unseen_missed = self.unseen_missed or self.unseen() > 0

    def unseen(self) -> int:
        """Expected members that have never posted (waited for, as members still to come, until a wait
        times out): a population whose first post comes before its peers' still compares like with like."""
        return 0 if self.unseen_missed else max(0, self.expected - len(self.epochs))

    # --- reading ------------------------------------------------------------------------
    def _epoch(self, epoch: int) -> _Epoch | None:
        """The epoch's matrices (None: members with different landmark counts posted it)."""
        if epoch not in self._stacks:
            rows = self.by_epoch.get(epoch, {})
            ids = sorted(rows)
            if len({len(rows[t][1]) for t in ids}) > 1:
                self._stacks[epoch] = None
            else:
                num_landmarks = len(rows[ids[0]][1]) if ids else 0
                s = np.array([rows[t][0] for t in ids], float).reshape(len(ids), num_landmarks).T.copy()
                e = np.array([rows[t][1] for t in ids], float).reshape(len(ids), num_landmarks).T.copy()
                self._stacks[epoch] = _Epoch(ids, s, e)
        return self._stacks[epoch]

    def members(self, epoch: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Everyone who posted exactly `epoch`: (ids, sigma [n, L], err [n, L]); ([], empty) if their
        landmark counts differ."""
        stack = self._epoch(epoch)
        if stack is None:
            return sorted(self.by_epoch.get(epoch, {})), np.zeros((0, 0)), np.zeros((0, 0))
        return list(stack.ids), stack.sigma.T, stack.err.T

    def _peers_lm(self, trial_id: str, epoch: int, num_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
        """Other members at exactly `epoch` with the same landmark count, landmark-major: (sigma, err [L, n])."""
        stack = self._epoch(epoch)
        if stack is not None and (stack.err.shape[0] == num_landmarks or not stack.ids):
            if not stack.ids:
                return np.zeros((num_landmarks, 0)), np.zeros((num_landmarks, 0))
            return stack.others(trial_id)
        rows = self.by_epoch.get(epoch, {})
        keep = [t for t in sorted(rows) if t != trial_id and len(rows[t][1]) == num_landmarks]
        if not keep:
            return np.zeros((num_landmarks, 0)), np.zeros((num_landmarks, 0))
        return np.array([rows[t][0] for t in keep]).T.copy(), np.array([rows[t][1] for t in keep]).T.copy()

    def peers(self, trial_id: str, epoch: int, num_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
        """Other members at exactly `epoch` with the same landmark count: (sigma [n, L], err [n, L])."""
        s, e = self._peers_lm(trial_id, epoch, num_landmarks)
        return s.T, e.T

    def latest(self, trial_id: str) -> int:
        return self._latest.get(trial_id, -1)

    def waiting_for(self, epoch: int, trial_id: str | None = None) -> list[str]:
        """Known live members (other than `trial_id`) that have not reached `epoch` yet: not ended,
        not past a missed wait, and whose last posted epoch is earlier."""
        return [t for t, last in self._latest.items()
                if last < epoch and t != trial_id and t not in self.left and t not in self.missed]

    def num_waiting(self, epoch: int, trial_id: str | None = None) -> int:
        """len(waiting_for(epoch, trial_id)) from per-epoch counts (O(epochs), not O(members)), plus the
        expected members that have never posted (`unseen`)."""
        n = sum(c for e, c in self._live_at.items() if e < epoch)
        return n - int(trial_id is not None and self._live(trial_id) and self._latest[trial_id] < epoch) + self.unseen()

    def contexts(self, posts: list[BoardPost]) -> list[BoardContext]:
        """`context` of many posts (already on the board): the posts to one epoch with one quantile
        and no rule share one pass over that epoch (`_members_features`)."""
        out: list[BoardContext | None] = [None] * len(posts)
        groups: dict[tuple[int, float], list[int]] = {}
        for i, p in enumerate(posts):
            groups.setdefault((int(p.epoch), float(p.quantile)), []).append(i)
        for (epoch, quantile), idx in groups.items():
            stack = self._epoch(epoch)
            batch = []
            for i in idx:
                p = posts[i]
                col = bisect.bisect_left(stack.ids, p.trial_id) if stack is not None else -1
                if (p.rule is None and stack is not None and col < len(stack.ids)
                        and stack.ids[col] == p.trial_id and stack.err.shape[0] == len(p.err)
                        and np.array_equal(stack.err[:, col], p.err) and np.array_equal(stack.sigma[:, col], p.sigma)):
                    batch.append((i, col))
                else:  # a rule, mixed landmark counts, or a post the board no longer holds as sent
                    out[i] = self._context_one(p)
            if batch:
                draws = donor_draws([member_key(posts[i]) for i, _ in batch], epoch, stack.err.shape[0])
                feats, median, donor = _members_features(np.log(stack.sigma), np.maximum(stack.err, 1e-6),
                                                         np.array([c for _, c in batch]), quantile, draws)
                for j, (i, _) in enumerate(batch):
                    out[i] = BoardContext(feats[j], median[j], len(stack.ids) - 1, donor_sigma=np.exp(donor[j]))
        return out  # type: ignore[return-value]

    def context(self, post: BoardPost, waited_s: float = 0.0) -> BoardContext:
        """The features of a post (already on the board) against its peers; the rule's sigma if asked."""
        ctx = self._context_one(post) if post.rule is not None else self.contexts([post])[0]
        ctx.waited_s = waited_s
        return ctx

    def _context_one(self, post: BoardPost) -> BoardContext:
        """`context` from a rebuild of the post's peers (any post: a rule, mixed landmark counts)."""
        sigma, err = np.asarray(post.sigma, float), np.asarray(post.err, float)
        ps, pe = self._peers_lm(post.trial_id, post.epoch, len(err))
        feats, median, donor = _features(sigma, err, np.log(ps), np.maximum(pe, 1e-6), post.quantile,
                                         donor_draw(post, len(err)))
        ctx = BoardContext(feats, median, pe.shape[1], donor_sigma=np.exp(donor))
        if post.rule is not None:
            rng = np.random.default_rng([member_key(post), int(post.epoch), post.rule.seed])
            ctx.sigma_next, ctx.exploited = landmark_pbt_sigma(sigma, err, ps.T, pe.T, post.rule, rng)
        return ctx


def member_key(post: BoardPost) -> int:
    """What keys a member's board draws: its place in the population, else (Tune's) trial id."""
    return post.member if post.member is not None else zlib.crc32(post.trial_id.encode())


_MIX = (0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9)  # splitmix64's odd constants


def donor_draws(keys, epoch: int, num_landmarks: int) -> np.ndarray:
    """Uniform [0, 1) draws [b, L] that pick ADOPT's donors among the top peers, a pure hash of (member
    key [b], epoch, landmark): a rerun of the same member at the same epoch picks the same ranks, members
    pick independently (no herd), and a flush of b posts costs one vectorised pass (no generator per post)."""
    m1, m2, m3, m4 = (np.uint64(c) for c in _MIX)
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the point
        x = (np.array([int(k) % 2**64 for k in keys], np.uint64).reshape(-1, 1) * m1
             + np.full((1, 1), int(epoch) % 2**64, np.uint64) * m2
             + np.arange(1, num_landmarks + 1, dtype=np.uint64).reshape(1, -1) * m3)
        x ^= x >> np.uint64(30)
        x *= m4
        x ^= x >> np.uint64(27)
        x *= m3
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def donor_draw(post: BoardPost, num_landmarks: int) -> np.ndarray:
    """`donor_draws` of one post [L]."""
    return donor_draws([member_key(post)], int(post.epoch), num_landmarks)[0]


def landmark_pbt_sigma(sigma: np.ndarray, err: np.ndarray, peer_sigma: np.ndarray, peer_err: np.ndarray,
                       rule: PBTRule, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """landmark_pbt for one member at one epoch: (next sigma [L], exploited [L] bool).

    Members = this one and its peers at the same epoch. Per landmark l, with k = top_count(m,
    quantile, disjoint=True) of m members: if this member is among the k worst on l (ties count in its
    favour), it takes the sigma_l of one of the k best, drawn at random, times a factor drawn
    from `rule.perturb`, clipped to [lo, hi]; otherwise it keeps its sigma_l. Weights are never
    copied, and a member alone keeps everything."""
    sigma = np.asarray(sigma, float)
    out, exploited = sigma.copy(), np.zeros(len(sigma), bool)
    n = len(peer_err)
    if n == 0:
        return out, exploited
    k = top_count(n + 1, rule.quantile, disjoint=True)
    for lm in range(len(sigma)):
        not_better = int(np.sum(peer_err[:, lm] >= err[lm]))  # ties rank this member the better one
        if not_better >= k:
            continue
        donors = np.argsort(peer_err[:, lm], kind="stable")[:k]
        donor = int(rng.choice(donors))
        factor = float(rng.choice(np.asarray(rule.perturb, float)))
        out[lm] = float(np.clip(peer_sigma[donor, lm] * factor, rule.lo, rule.hi))
        exploited[lm] = True
    return out, exploited


class Boards:
    """One Board per population name (what a policy server or an in-process transport holds)."""

    def __init__(self) -> None:
        self.boards: dict[str, Board] = {}

    def __getitem__(self, name: str) -> Board:
        return self.boards.setdefault(name, Board())

    def post(self, post: BoardPost) -> Board:
        board = self[post.board]
        board.post(post.trial_id, post.epoch, post.sigma, post.err)
        return board

    def contexts(self, posts: list[BoardPost]) -> list[BoardContext]:
        """`Board.contexts` of posts already on their boards, each board's in one pass."""
        out: list[BoardContext | None] = [None] * len(posts)
        by_board: dict[str, list[int]] = {}
        for i, p in enumerate(posts):
            by_board.setdefault(p.board, []).append(i)
        for name, idx in by_board.items():
            for i, ctx in zip(idx, self[name].contexts([posts[i] for i in idx]), strict=True):
                out[i] = ctx
        return out  # type: ignore[return-value]

    def answer(self, post: BoardPost) -> BoardContext:
        """Post and answer at once (no waiting: in-process populations step in lock step)."""
        return self.post(post).context(post)

    def leave(self, trial_id: str) -> None:
        for board in self.boards.values():
            board.leave(trial_id)

    def expect(self, counts: dict[str, int]) -> None:
        """How many members each board's population has (the search's plan): a wait also covers the
        members that have not posted yet."""
        for name, n in counts.items():
            self[name].expected = int(n)


__all__ = ["Board", "Boards", "donor_draw", "donor_draws", "landmark_pbt_sigma", "member_key", "peer_features", "top_count"]
