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
from distlmk.protocol import OBS_DIM, StepRequest


@ray.remote(num_cpus=0)
class NoOp:
    async def step(self, request):
        return None

    def ping(self):
        return True


@ray.remote(num_cpus=0)
class TrialSwarm:
    """Runs `n` simulated trials concurrently against a target actor's `step`."""

    async def run(
        self, target, prefix: str, n: int, decisions: int, landmarks: int, seed: int
    ) -> list[float]:
        rng = np.random.default_rng(seed)
        rows = np.arange(landmarks + 1)

        async def trial(i: int) -> list[float]:
            lat = []
            for d in range(decisions):
                obs = rng.uniform(0, 1, (landmarks + 1, OBS_DIM)).astype(np.float32)
                obs[-1, 0] = 1.0
                rew = None if d == 0 else rng.normal(0, 1, landmarks + 1).astype(np.float32)
                req = StepRequest(
                    f"{prefix}{i}",
                    rows,
                    obs,
                    rew,
                    np.zeros(landmarks + 1, bool),
                    d == decisions - 1,
                )
                t0 = time.perf_counter()
                await target.step.remote(req)
                lat.append(time.perf_counter() - t0)
            return lat

        out = await asyncio.gather(*[trial(i) for i in range(n)])
        return [x for lat in out for x in lat]


def load(target, trials: int, swarms: list, decisions: int, landmarks: int, tag: str) -> dict:
    per = trials // len(swarms)
    t0 = time.perf_counter()
    lats = ray.get(
        [
            s.run.remote(target, f"{tag}-{j}-", per, decisions, landmarks, j)
            for j, s in enumerate(swarms)
        ]
    )
    wall = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(x) for x in lats]) * 1e3
    return {
        "trials": per * len(swarms),
        "calls": int(lat.size),
        "calls_per_s": lat.size / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--trials", type=int, nargs="+", default=[64, 256], help="closed-loop trials per measurement")
    ap.add_argument("--decisions", type=int, default=20, help="decisions per trial")
    ap.add_argument("--landmarks", type=int, default=19, help="landmarks per trial (rows = landmarks + 1)")
    ap.add_argument("--swarms", type=int, default=4, help="client actors the trials are spread over")
    ap.add_argument("--train-batch-rows", type=int, default=4096, help="rows per PPO update")
    ap.add_argument("--freeze", action="store_true", help="serve only (no PPO updates during the run)")
    args = ap.parse_args()
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
    write_result(
        "policy_server_frozen" if args.freeze else "policy_server",
        {"landmarks": args.landmarks, "decisions_per_trial": args.decisions, "swarms": args.swarms,
         "train_batch_rows": args.train_batch_rows, "frozen": args.freeze,
         "updates_during_measurement": ray.get(server.stats.remote())["updates"] - updates_before, "rows": rows},
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
