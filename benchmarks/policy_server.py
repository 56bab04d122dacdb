"""Central policy server under load: decisions/s and p50/p99 latency with many simulated
trials, beside the round trip of a no-op Ray actor call with the same payload and the same
concurrency, measured in the same run (the ratio says what the policy adds to Ray's own cost).

Trials are simulated by a few client actors, each running many trials as asyncio tasks
(a process per trial would measure process scheduling on 2 cores, not the server). The client
actors are warmed (a short run against both targets) before anything is measured. PPO updates
run during the measurement, as they do in a real population; `--freeze` serves with updates
off (written as policy_server_frozen.json), to see what the updates cost.
Goal (issue 3): >= 2,000 decisions/s at 256 trials on 2 cores, p99 <= 20 ms; judged at 256
trials only (goal_met is null at other sizes).

Scale (issue 15, `scale` in the JSON): at `--scale-trials` (256 and 1,024) simulated trials of one
population, side by side in the same run, against a second server with updates frozen (so both
server modes serve the same way; what updates cost is the comparison above):
  context    the real path of an rl trial, one call per decision: `decide(DecisionRequest)` (the
             board books the post, computes the features against the peers at the same epoch
             for the whole flush at once, completes the rows and the peer reward, then the
             forward pass; `wait_s` 0, so it measures compute, not waiting for peers);
  step       the same server, `step` only (no board, no context);
  noop       a no-op actor answering `decide` with the same shapes (the transport floor of the
             context path), and `noop_step` its `step`.
`board_in_process` times the board's compute alone (`Boards.answer`, no Ray) at the same size.
Decisions/s count whole decisions (context + step where there is one), rows/s the rows stepped.
Goal: the context costs at most 10 % of throughput (context >= 0.9 x step decisions/s), judged
at every size. The modes alternate (noop, step, context, context, step, noop, ...) `--repeats`
times; figures are pooled over the repeats, and each repeat's ratio is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import ray

from benchmarks.common import write_result
from distlmk.config import PolicyConfig
from distlmk.policy.server import start_policy_server
from distlmk.population.localray import init_ray
from distlmk.protocol import (
    NO_ACTION,
    OBS_DIM,
    BoardContext,
    BoardPost,
    Decided,
    DecisionRequest,
    PeerReward,
    StepRequest,
)


@ray.remote(num_cpus=0)
class NoOp:
    """Answers the policy server's calls with the same shapes, computing nothing."""

    async def step(self, request: StepRequest) -> np.ndarray:
        return np.full((len(request.rows), 2), NO_ACTION, np.int64)  # the server's actions [R, 2]

    async def decide(self, request: DecisionRequest) -> Decided:
        actions = np.full((len(request.rows), 2), NO_ACTION, np.int64)
        return Decided(actions, BoardContext.alone(len(request.post.err)))  # features [L, BOARD_DIM], median [L]

    def ping(self):
        return True


@ray.remote(num_cpus=0)
class TrialSwarm:
    """Runs `n` simulated trials concurrently against a target actor's `step` (or, with `board`
    set, its `decide`: the trials form one population of that name)."""

    async def run(
        self, target, prefix: str, n: int, decisions: int, landmarks: int, seed: int, board: str | None = None
    ) -> dict[str, list[float]]:
        rng = np.random.default_rng(seed)
        rows = np.arange(landmarks + 1)
        lat: dict[str, list[float]] = {"step": [], "context": [], "decision": []}

        async def trial(i: int) -> None:
            sigma = rng.uniform(1.0, 8.0, landmarks)
            for d in range(decisions):
                obs = rng.uniform(0, 1, (landmarks + 1, OBS_DIM)).astype(np.float32)
                obs[-1, 0] = 1.0
                rew = None if d == 0 else rng.normal(0, 1, landmarks + 1).astype(np.float32)
                terminated, last = np.zeros(landmarks + 1, bool), d == decisions - 1
                err, prev_rel = rng.uniform(0.5, 3.0, landmarks), rng.normal(0, 0.1, landmarks)  # both modes: same work
                t0 = time.perf_counter()
                if board is None:
                    actions = await target.step.remote(StepRequest(f"{prefix}{i}", rows, obs, rew, terminated, last))
                else:  # an rl trial's decision: post, own rows and own-form rewards; the peer reward's half
                    post = BoardPost(board, f"{prefix}{i}", d + 1, sigma, err, 0.25, 0.0)
                    peer = None if rew is None else PeerReward(prev_rel, 10.0, 0.01)
                    answer = await target.decide.remote(DecisionRequest(post, rows, obs, rew, terminated, last, peer))
                    actions = answer.actions
                    assert answer.context.features.shape[0] == landmarks
                assert actions.shape == (landmarks + 1, 2), actions.shape
                t1 = time.perf_counter()
                lat["context" if board is not None else "step"].append(t1 - t0)
                lat["decision"].append(t1 - t0)

        await asyncio.gather(*[trial(i) for i in range(n)])
        return lat


def _pct(x: np.ndarray) -> dict:
    return {"p50_ms": float(np.percentile(x, 50)), "p99_ms": float(np.percentile(x, 99))} if x.size else {}


def load(target, trials: int, swarms: list, decisions: int, landmarks: int, tag: str, board: str | None = None) -> dict:
    per = trials // len(swarms)
    t0 = time.perf_counter()
    outs = ray.get(
        [
            s.run.remote(target, f"{tag}-{j}-", per, decisions, landmarks, j, board)
            for j, s in enumerate(swarms)
        ]
    )
    wall = time.perf_counter() - t0
    lat = {k: np.concatenate([np.asarray(o[k]) for o in outs]) * 1e3 for k in ("step", "context", "decision")}
    dec = lat["decision"]
    return {
        "trials": per * len(swarms),
        "calls": int(lat["step"].size + lat["context"].size),
        "decisions": int(dec.size),
        "calls_per_s": dec.size / wall,  # decisions/s (one call each); the key the table reads
        "decisions_per_s": dec.size / wall,
        "rows_per_s": dec.size * (landmarks + 1) / wall,
        "p50_ms": float(np.percentile(dec, 50)),  # per decision
        "p99_ms": float(np.percentile(dec, 99)),
        "step_call": _pct(lat["step"]),
        "decide_call": _pct(lat["context"]),
        "wall_s": wall,
    }


def pooled(runs: list[dict]) -> dict:
    """Repeats of one mode as one measurement: decisions over summed wall time; latency
    percentiles over the repeats' percentiles (median of each)."""
    wall, dec = sum(r["wall_s"] for r in runs), sum(r["decisions"] for r in runs)
    out = {"trials": runs[0]["trials"], "decisions": dec, "wall_s": wall, "decisions_per_s": dec / wall,
           "rows_per_s": sum(r["rows_per_s"] * r["wall_s"] for r in runs) / wall,
           "p50_ms": float(np.median([r["p50_ms"] for r in runs])), "p99_ms": float(np.median([r["p99_ms"] for r in runs]))}
    for call in ("step_call", "decide_call"):
        if runs[0][call]:
            out[call] = {k: float(np.median([r[call][k] for r in runs])) for k in ("p50_ms", "p99_ms")}
    out["repeats"] = runs
    return out


def board_in_process(trials: int, decisions: int, landmarks: int, seed: int = 0) -> dict:
    """The board's compute alone (no Ray), epoch by epoch: every trial posts and reads its context
    at once (`answer`), or every trial posts and then the whole epoch's contexts are read in one
    batch (`contexts`, what a flush of a lockstep population gets)."""
    from distlmk.policy.board import Boards

    rng = np.random.default_rng(seed)
    sigma = rng.uniform(1.0, 8.0, (trials, landmarks))
    err = rng.uniform(0.5, 3.0, (decisions, trials, landmarks))
    walls = {}
    for how in ("single", "batched"):
        boards = Boards()
        t0 = time.perf_counter()
        for epoch in range(1, decisions + 1):
            posts = [BoardPost("b", f"t{i}", epoch, sigma[i], err[epoch - 1, i], 0.25, 0.0) for i in range(trials)]
            if how == "single":
                for p in posts:
                    boards.answer(p)
            else:
                for p in posts:
                    boards.post(p)
                boards.contexts(posts)
        walls[how] = time.perf_counter() - t0
    n = trials * decisions
    return {"contexts": n, "contexts_per_s": n / walls["single"], "us_per_context": walls["single"] / n * 1e6,
            "us_per_context_batched": walls["batched"] / n * 1e6}


SCALE_MODES = ("noop", "noop_step", "step", "context")
GOAL_CONTEXT_RATIO = 0.9  # issue 15: the context may cost at most 10 % of throughput


def scale(args, swarms: list, noop) -> dict:
    """Context vs step only vs the no-op actor at each size (see the module docstring)."""
    cfg = PolicyConfig(train_batch_rows=args.train_batch_rows, minibatch_size=512, freeze=True)
    server = start_policy_server("bench-policy-scale", cfg, None)
    ray.get(server.ping.remote())
    targets = {"noop": (noop, True), "noop_step": (noop, False), "step": (server, False), "context": (server, True)}
    for mode, (target, board) in targets.items():  # warm: the server's board and serving paths, the clients
        load(target, 2 * len(swarms), swarms, 2, args.landmarks, f"warm-{mode}", "warm" if board else None)
    sizes = []
    for n in args.scale_trials:
        runs: dict[str, list[dict]] = {m: [] for m in SCALE_MODES}
        for rep in range(args.repeats):
            order = SCALE_MODES if rep % 2 == 0 else SCALE_MODES[::-1]  # ABBA: drift in the host's load cancels
            for mode in order:
                target, board = targets[mode]
                tag = f"{mode}{n}r{rep}"
                runs[mode].append(load(target, n, swarms, args.scale_decisions, args.landmarks, tag,
                                       tag if board else None))
        m = {mode: pooled(r) for mode, r in runs.items()}
        ratio = m["context"]["decisions_per_s"] / m["step"]["decisions_per_s"]
        floor = m["noop"]["decisions_per_s"] / m["noop_step"]["decisions_per_s"]  # the decide payload, no compute
        row = {
            "trials": n,
            **m,
            # the ratio: decisions/s with the board context over step only, same server, same run
            "context_throughput_ratio": ratio,
            "context_ratio_per_repeat": [c["decisions_per_s"] / s["decisions_per_s"]
                                         for c, s in zip(runs["context"], runs["step"], strict=True)],
            # the same ratio for the no-op actor: what the decision's larger message costs by transport alone
            "noop_decide_over_step_ratio": floor,
            "context_ratio_over_noop_ratio": ratio / floor,  # what is left for the board's compute
            "context_vs_noop_ratio": m["context"]["decisions_per_s"] / m["noop"]["decisions_per_s"],
            "goal_met": bool(ratio >= GOAL_CONTEXT_RATIO),
            "board_in_process": board_in_process(n, args.scale_decisions, args.landmarks),
        }
        sizes.append(row)
        print(f"{n:5d} trials: " + " | ".join(
            f"{mode} {m[mode]['decisions_per_s']:6.0f}/s p50 {m[mode]['p50_ms']:6.1f} p99 {m[mode]['p99_ms']:6.1f} ms"
            for mode in SCALE_MODES) + f" | context/step {ratio:.2f} (no-op decide/step {floor:.2f}) | board "
            f"in-process {row['board_in_process']['us_per_context']:.0f} us/context one at a time, "
            f"{row['board_in_process']['us_per_context_batched']:.0f} us batched by epoch")
    stats = ray.get(server.stats.remote())
    ray.kill(server)
    return {"trials": args.scale_trials, "decisions_per_trial": args.scale_decisions, "landmarks": args.landmarks,
            "rows_per_decision": args.landmarks + 1, "repeats": args.repeats, "peer_wait_s": 0.0, "frozen": True,
            "modes": list(SCALE_MODES), "goal_context_ratio": GOAL_CONTEXT_RATIO,
            "goal_met": bool(sizes) and all(r["goal_met"] for r in sizes), "board_waits": stats["board"],
            "mean_batch": stats["mean_batch"], "sizes": sizes}


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--trials", type=int, nargs="+", default=[64, 256], help="closed-loop trials per measurement")
    ap.add_argument("--decisions", type=int, default=20, help="decisions per trial")
    ap.add_argument("--landmarks", type=int, default=19, help="landmarks per trial (rows = landmarks + 1)")
    ap.add_argument("--swarms", type=int, default=4, help="client actors the trials are spread over")
    ap.add_argument("--train-batch-rows", type=int, default=4096, help="rows per PPO update")
    ap.add_argument("--freeze", action="store_true", help="serve only (no PPO updates during the run)")
    ap.add_argument("--scale-trials", type=int, nargs="*", default=[256, 1024],
                    help="simulated trials of one population for context vs step vs no-op (none: skip)")
    ap.add_argument("--scale-decisions", type=int, default=5, help="decisions per trial in the scale comparison")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats of each scale mode")
    args = ap.parse_args()
    t_start = time.perf_counter()
    init_ray(None, num_cpus=2, log_to_driver=False)
    cfg = PolicyConfig(train_batch_rows=args.train_batch_rows, minibatch_size=512, freeze=args.freeze)
    server = start_policy_server("bench-policy", cfg, None)
    noop = NoOp.remote()
    ray.get([server.ping.remote(), noop.ping.remote()])
    swarms = [TrialSwarm.remote() for _ in range(args.swarms)]
    for target in (noop, server):  # warm the clients: imports, actor handles, connections
        load(target, 2 * len(swarms), swarms, 2, args.landmarks, "warm")
    rows = []
    updates_before = ray.get(server.stats.remote())["updates"]
    for n in args.trials:
        base = load(noop, n, swarms, args.decisions, args.landmarks, f"noop{n}")
        pol = load(server, n, swarms, args.decisions, args.landmarks, f"pol{n}")
        stats = ray.get(server.stats.remote())
        row = {
            "trials": n,
            "policy": pol,
            "noop_actor": base,
            "throughput_ratio": pol["calls_per_s"] / base["calls_per_s"],
            "p50_ratio": pol["p50_ms"] / base["p50_ms"],
            "policy_updates_so_far": stats["updates"],
            "mean_batch": stats["mean_batch"],
            "frozen": args.freeze,
            "goal_met": (pol["calls_per_s"] >= 2000 and pol["p99_ms"] <= 20) if n == 256 else None,
        }
        rows.append(row)
        print(
            f"{n:5d} trials: policy {pol['calls_per_s']:7.0f} decisions/s  p50 {pol['p50_ms']:6.2f} ms  "
            f"p99 {pol['p99_ms']:6.2f} ms | no-op actor {base['calls_per_s']:7.0f} calls/s  p50 {base['p50_ms']:6.2f} ms "
            f"p99 {base['p99_ms']:6.2f} ms | policy/no-op throughput {row['throughput_ratio']:.2f}  "
            f"mean batch {stats['mean_batch']:.1f}  updates {stats['updates']}"
        )
    updates = ray.get(server.stats.remote())["updates"] - updates_before
    ray.kill(server)  # its updates must not run during the scale comparison
    scale_result = scale(args, swarms, noop) if args.scale_trials else None
    write_result(
        "policy_server_frozen" if args.freeze else "policy_server",
        {"landmarks": args.landmarks, "decisions_per_trial": args.decisions, "swarms": args.swarms,
         "train_batch_rows": args.train_batch_rows, "frozen": args.freeze,
         "updates_during_measurement": updates, "rows": rows,
         **({"scale": scale_result} if scale_result else {}),
         "run_s": time.perf_counter() - t_start},
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
