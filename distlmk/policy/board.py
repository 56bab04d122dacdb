"""The population's board: every member's sigma_l and validation error on l by epoch (numpy only).

The policy server holds one `Board` per population (`Boards`); members post through the
transport (`distlmk.protocol.BoardPost`) and get their features against the **peers at the
same epoch**: the other members that posted exactly that epoch. Members at other epochs are
ignored, so an asynchronous population never compares an early epoch with a late one.

A member that restarts (a retry, a PBT exploit) and posts an epoch it posted before replaces
its rows from that epoch on: no row counts twice, and nothing it posted in its abandoned
future stays on the board.

`landmark_pbt_sigma` is the landmark_pbt rule, a pure function of the board.
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


def _features(sigma: np.ndarray, err: np.ndarray, log_ps: np.ndarray, pe: np.ndarray,
              quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """`peer_features` on landmark-major peers (log sigma, error floored at 1e-6: [L, n] each, C order),
    and the peers' median error [L] (nan without peers). O(n L) numpy: partitions, no sort."""
    num_landmarks, n = pe.shape
    out = np.zeros((num_landmarks, BOARD_DIM), np.float32)
    if n == 0:
        return out, np.full(num_landmarks, np.nan)
    e = np.maximum(err, 1e-6)
    k = top_count(n, quantile)
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
    return out, median


class _Epoch:
    """Everyone at one epoch as landmark-major matrices in trial-id order (sigma, err: [L, n]).
    A post inserts or replaces its column (new arrays: what `members` handed out stays as it was),
    so reading an epoch never restacks its rows."""

    def __init__(self, ids: list[str], sigma: np.ndarray, err: np.ndarray) -> None:
        self.ids, self.sigma, self.err = ids, sigma, err

    def put(self, trial_id: str, sigma: np.ndarray, err: np.ndarray) -> bool:
        """Book one member's column; False if its landmark count differs (the caller drops this cache)."""
        if not self.ids:  # an epoch read before anyone posted it
            self.sigma, self.err = np.zeros((len(err), 0)), np.zeros((len(err), 0))
        if len(err) != self.err.shape[0]:
            return False
        i = bisect.bisect_left(self.ids, trial_id)
        if i < len(self.ids) and self.ids[i] == trial_id:
            self.sigma, self.err = self.sigma.copy(), self.err.copy()
            self.sigma[:, i], self.err[:, i] = sigma, err
        else:
            self.ids.insert(i, trial_id)
            self.sigma, self.err = np.insert(self.sigma, i, sigma, axis=1), np.insert(self.err, i, err, axis=1)
        return True

    def others(self, trial_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Every column but `trial_id`'s: (sigma, err [L, n]) copies."""
        i = bisect.bisect_left(self.ids, trial_id)
        if i < len(self.ids) and self.ids[i] == trial_id:
            return np.delete(self.sigma, i, axis=1), np.delete(self.err, i, axis=1)
        return self.sigma.copy(), self.err.copy()


class Board:
    """One population's rows: (trial, epoch) -> (sigma [L], err [L])."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self.epochs: dict[str, set[int]] = {}  # epochs each member has on the board
        self.left: set[str] = set()  # members that ended: never waited for again
        self.missed: set[str] = set()  # members a wait timed out on: not waited for until they post
        self._latest: dict[str, int] = {}  # each member's last epoch on the board
        self._stacks: dict[int, _Epoch | None] = {}  # built on first read, then kept up to date; None: mixed L
        self._pending: dict[int, list[str]] = {}  # waiting_for's answers until the board changes

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
        self._latest[trial_id] = epoch  # every later row went above
        self.left.discard(trial_id)
        self.missed.discard(trial_id)
        self._pending.clear()

    def leave(self, trial_id: str) -> None:
        """The member ended: its rows stay (peers at those epochs), nobody waits for it."""
        if trial_id in self.epochs:
            self.left.add(trial_id)
            self._pending.clear()

    def mark_missed(self, trial_ids) -> None:
        """A wait timed out on these members: not waited for again until they post."""
        self.missed.update(trial_ids)
        self._pending.clear()

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
        if epoch not in self._pending:
            self._pending[epoch] = [t for t, last in self._latest.items()
                                    if last < epoch and t not in self.left and t not in self.missed]
        return [t for t in self._pending[epoch] if t != trial_id]

    def context(self, post: BoardPost, waited_s: float = 0.0) -> BoardContext:
        """The features of a post (already on the board) against its peers; the rule's sigma if asked."""
        sigma, err = np.asarray(post.sigma, float), np.asarray(post.err, float)
        ps, pe = self._peers_lm(post.trial_id, post.epoch, len(err))
        feats, median = _features(sigma, err, np.log(ps), np.maximum(pe, 1e-6), post.quantile)
        ctx = BoardContext(feats, median, pe.shape[1], waited_s)
        if post.rule is not None:
            rng = np.random.default_rng([zlib.crc32(post.trial_id.encode()), int(post.epoch), post.rule.seed])
            ctx.sigma_next, ctx.exploited = landmark_pbt_sigma(sigma, err, ps.T, pe.T, post.rule, rng)
        return ctx


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

    def answer(self, post: BoardPost) -> BoardContext:
        """Post and answer at once (no waiting: in-process populations step in lock step)."""
        return self.post(post).context(post)

    def leave(self, trial_id: str) -> None:
        for board in self.boards.values():
            board.leave(trial_id)


__all__ = ["Board", "Boards", "landmark_pbt_sigma", "peer_features", "top_count"]
