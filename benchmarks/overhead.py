"""distlmk's own overhead: seconds per epoch of a plain trainer loop vs the same trial inside
Tune with the RL controller (checkpoint + report + a policy decision every epoch), measured
side by side in one run on one thread each. Goal (issue 5): <= 5 % extra wall time per epoch."""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from benchmarks.common import write_result
from distlmk.config import SearchConfig, load_yaml
from distlmk.population.search import run_search
from distlmk.train.trainer import Trainer


def plain_epochs(cfg, epochs: int) -> list[float]:
    torch.set_num_threads(1)
    exp = cfg.experiment
    exp.train.epochs, exp.train.device, exp.sigma.method = epochs, "cpu", "fixed"
    tr = Trainer(exp)
    times = []
    while not tr.done:
        t0 = time.perf_counter()
        tr.run_epoch()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tune_configs/synthetic_population.yaml")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args()
    plain = plain_epochs(load_yaml(args.config, SearchConfig), args.epochs)
    cfg = load_yaml(args.config, SearchConfig)
    cfg.name, cfg.methods, cfg.seeds, cfg.rl_trials_per_seed = "overhead", ["rl"], [0], 1
    cfg.experiment.train.epochs = args.epochs
    cfg.experiment.sigma.rl.min_progress_to_stop = 1.1  # never stop early: same number of epochs
    cfg.policy.pretrain_rounds = 0
    t0 = time.perf_counter()
    exp = run_search(cfg, out_dir=args.out, quiet=True)
    total = time.perf_counter() - t0
    rec = pd.read_parquet(exp / "records.parquet").sort_values("iteration")
    tune_epochs = rec["time_this_iter_s"].to_numpy(float)
    # epoch 1 carries one-off start-up (data prep, first forward); compare steady-state epochs
    p, t = float(np.mean(plain[1:])), float(np.mean(tune_epochs[1:]))
    extra = t / p - 1
    lat = rec["policy_latency_ms"].dropna()
    print(f"plain loop {p:.3f} s/epoch | Tune trial + RL controller {t:.3f} s/epoch -> {100 * extra:+.1f} % "
          f"(goal <= +5 %); policy round trip {lat.mean():.1f} ms/epoch; "
          f"whole Tune run incl. Ray start {total:.1f} s for {len(rec)} epochs")
    write_result("overhead", {"plain_s_per_epoch": plain, "tune_rl_s_per_epoch": tune_epochs.tolist(),
                              "plain_mean_s": p, "tune_rl_mean_s": t, "extra_fraction": extra,
                              "goal_met": extra <= 0.05, "policy_latency_ms_mean": float(lat.mean()),
                              "tune_total_s": total, "config": args.config})


if __name__ == "__main__":
    main()
