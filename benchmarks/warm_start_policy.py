"""The policy a compare's first generation starts from: the simulator warm start alone, no real trial.

`distlmk compare` trains its policy in two steps: PPO on simulated populations (the warm start,
`distlmk.policy.rollout.warm_start`), then generations of cold rl populations of real networks on
the training draws. This script makes the first step's policy exactly as the compare's first
generation makes it (the same stage config, policy seed and sigma settings, via
`Arena.stage_config`) and saves it, so the arena can evaluate it frozen on the held-out draws
beside the policy the generations trained (issue 15: what did learning from real trials add?).

How to run:
    python -m benchmarks.warm_start_policy --config tune_configs/synthetic_benchmark.yaml \
        --out results/warm_start_policy
    distlmk compare --config tune_configs/synthetic_benchmark.yaml --policy-checkpoint \
        results/warm_start_policy/final

Results to expect: a LearnerGroup checkpoint under OUT/final (~200 kB) and OUT/warm_start.json with
its PPO updates and simulated transitions (about 28 updates and 29,000 transitions for the benchmark
config); building it takes a minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from distlmk import rundir
from distlmk.atomic import atomic_write_json
from distlmk.compare import Arena
from distlmk.config import CompareConfig, load_yaml, to_dict
from distlmk.stages import Role, StageKind, StageSpec


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--config", default="tune_configs/synthetic_benchmark.yaml", help="a compare config")
    ap.add_argument("--out", default="results/warm_start_policy", help="folder for the policy (OUT/final)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from distlmk.policy.core import PolicyCore
    from distlmk.policy.rollout import warm_start

    cfg = load_yaml(args.config, CompareConfig)
    arena = Arena(cfg)
    draw = cfg.train_draws[0]  # the first generation's first stage, as `Arena.generations` configures it
    spec = StageSpec(f"gen1_d{draw}", StageKind.GENERATION, (draw,), (Role.RL,), generation=1)
    sc = arena.stage_config(spec, [], warm_start=True, policy_seed=1000 + draw)
    t0 = time.perf_counter()
    core = PolicyCore(sc.policy)
    warm_start(core, sc.experiment.sigma)
    out = Path(args.out)
    final = out / rundir.POLICY_FINAL
    final.parent.mkdir(parents=True, exist_ok=True)
    core.save(str(final.resolve()))
    state = {k: core.stats[k] for k in ("updates", "env_steps", "decisions")}
    atomic_write_json(out / rundir.SERVER_STATE, state)
    atomic_write_json(out / "warm_start.json", {"config": args.config, "stage": spec.name, **state,
                                                "policy": to_dict(sc.policy), "seconds": time.perf_counter() - t0})
    print(f"warm-start policy ({state['updates']} updates, {state['env_steps']} simulated transitions) -> {final}")


if __name__ == "__main__":
    main()
