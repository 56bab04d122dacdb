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
    n, num_landmarks = peer_err.shape[0], len(err)
    out = np.zeros((num_landmarks, BOARD_DIM), np.float32)
    if n == 0:
        return out
    e = np.maximum(err, 1e-6)
    pe = np.maximum(peer_err, 1e-6)
    log_ps = np.log(peer_sigma)
    k = top_count(n, quantile)
    top = np.argsort(pe, axis=0, kind="stable")[:k]  # [k, L] peers with the lowest error on each landmark
    top_log_sigma = np.take_along_axis(log_ps, top, axis=0).mean(axis=0)
    out[:, _COL[Feature.ERR_VS_MEDIAN]] = np.log(e / np.median(pe, axis=0))
    out[:, _COL[Feature.ERR_VS_BEST]] = np.log(e / pe.min(axis=0))
    out[:, _COL[Feature.SIGMA_VS_TOP]] = np.log(sigma) - top_log_sigma
    out[:, _COL[Feature.SIGMA_SPREAD]] = log_ps.std(axis=0) if n > 1 else 0.0
    out[:, _COL[Feature.PEER_COUNT]] = math.log1p(n) / math.log1p(PEER_COUNT_SCALE)
    return out


class Board:
    """One population's rows: (trial, epoch) -> (sigma [L], err [L])."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self.epochs: dict[str, set[int]] = {}  # epochs each member has on the board
        self.left: set[str] = set()  # members that ended: never waited for again
        self.missed: set[str] = set()  # members a wait timed out on: not waited for until they post
        self._latest: dict[str, int] = {}  # each member's last epoch on the board
        self._stacks: dict[int, tuple[list[str], np.ndarray, np.ndarray]] = {}
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
        self.by_epoch.setdefault(epoch, {})[trial_id] = (np.asarray(sigma, float).copy(), np.asarray(err, float).copy())
        self._stacks.pop(epoch, None)
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
    def members(self, epoch: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Everyone who posted exactly `epoch`: (ids, sigma [n, L], err [n, L])."""
        if epoch not in self._stacks:
            rows = self.by_epoch.get(epoch, {})
            ids = sorted(rows)
            if ids and len({len(rows[t][1]) for t in ids}) == 1:
                s = np.stack([rows[t][0] for t in ids])
                e = np.stack([rows[t][1] for t in ids])
            else:
                s = e = np.zeros((0, 0))  # mixed landmark counts: `peers` filters row by row
            self._stacks[epoch] = (ids, s, e)
        return self._stacks[epoch]

    def peers(self, trial_id: str, epoch: int, num_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
        """Other members at exactly `epoch` with the same landmark count: (sigma [n, L], err [n, L])."""
        ids, s, e = self.members(epoch)
        if s.shape[1:] != (num_landmarks,):
            rows = self.by_epoch.get(epoch, {})
            keep = [t for t in ids if t != trial_id and len(rows[t][1]) == num_landmarks]
            if not keep:
                return np.zeros((0, num_landmarks)), np.zeros((0, num_landmarks))
            return np.stack([rows[t][0] for t in keep]), np.stack([rows[t][1] for t in keep])
        mask = np.array([t != trial_id for t in ids], bool)
        return s[mask], e[mask]

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
        ps, pe = self.peers(post.trial_id, post.epoch, len(err))
        feats = peer_features(sigma, err, ps, pe, post.quantile)
        median = np.median(np.maximum(pe, 1e-6), axis=0) if len(pe) else np.full(len(err), np.nan)
        ctx = BoardContext(feats, median, len(pe), waited_s)
        if post.rule is not None:
            rng = np.random.default_rng([zlib.crc32(post.trial_id.encode()), int(post.epoch), post.rule.seed])
            ctx.sigma_next, ctx.exploited = landmark_pbt_sigma(sigma, err, ps, pe, post.rule, rng)
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
