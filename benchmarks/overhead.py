"""distlmk's own overhead, as the driver sees it: wall seconds per epoch of a plain trainer loop
vs the same trial inside Tune with the RL controller (checkpoint + report + a policy decision
every epoch, PPO updates happening during the run), one thread each.

Tune side: the driver stamps every result as it arrives (a Tune callback); seconds per epoch
are the gaps between consecutive arrivals, so the time between epochs (report, checkpoint,
policy round trip, scheduling) counts, unlike Tune's `time_this_iter_s`. The first epoch
(start-up) is left out on both sides. Plain and Tune runs are interleaved, `--repeats` times;
the JSON keeps every epoch time, the table median and spread (min-max over repeats).
Goal (issue 5): <= 5 % extra wall time per epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import ray
import torch
from ray import tune

from benchmarks.common import write_result
from distlmk.config import SearchConfig, load_yaml
from distlmk.population.localray import init_ray
from distlmk.population.search import run_search
from distlmk.train.trainer import Trainer


class Arrivals(tune.Callback):
    """Driver-side wall clock of every result."""

    def __init__(self):
        self.times: list[float] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.times.append(time.perf_counter())


def plain_epochs(cfg: SearchConfig, epochs: int) -> list[float]:
    torch.set_num_threads(1)
    exp = cfg.experiment
    exp.train.epochs, exp.train.device, exp.sigma.method, exp.train.torch_threads = epochs, "cpu", "fixed", 1
    tr = Trainer(exp)
    times = []
    t0 = time.perf_counter()
    while not tr.done:
        tr.run_epoch()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        t0 = t1
    return times


def tune_epochs(cfg: SearchConfig, epochs: int, name: str, out: str, batch_rows: int) -> tuple[list[float], dict]:
    cfg.name, cfg.methods, cfg.seeds, cfg.rl_trials_per_seed = name, ["rl"], [0], 1
    cfg.experiment.train.epochs = epochs
    cfg.experiment.sigma.rl.min_progress_to_stop = 1.1  # never stop early: same number of epochs
    cfg.experiment.sigma.rl.decision_interval = 1
    cfg.resources.cpu = 1.0  # one torch thread, as the plain loop
    cfg.policy.pretrain_rounds = 0
    cfg.policy.train_batch_rows, cfg.policy.minibatch_size, cfg.policy.num_epochs = batch_rows, batch_rows, 1
    arrivals = Arrivals()
    outcome = run_search(cfg, out_dir=out, quiet=True, extra_callbacks=[arrivals])
    gaps = [b - a for a, b in zip(arrivals.times, arrivals.times[1:], strict=False)]
    return gaps, outcome.policy_stats or {}


def main() -> None:
    ap = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=__doc__)
    ap.add_argument("--config", default="tune_configs/synthetic_population.yaml", help="search config (data, model)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is left out)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved plain / Tune pairs")
    ap.add_argument("--out", default="bench_out", help="Tune storage folder")
    args = ap.parse_args()
    init_ray(None, num_cpus=2, log_to_driver=False)
    landmarks = load_yaml(args.config, SearchConfig).experiment.data.num_landmarks
    batch_rows = 2 * (landmarks + 1)  # one PPO update every 2 decisions: updates happen while measured
    plain, tuned, updates = [], [], []
    for r in range(args.repeats):
        p = plain_epochs(load_yaml(args.config, SearchConfig), args.epochs)
        t, stats = tune_epochs(load_yaml(args.config, SearchConfig), args.epochs, f"overhead_r{r}", args.out, batch_rows)
        plain.append(p[1:])
        tuned.append(t)  # gaps between arrivals: epochs 2..n
        updates.append(int(stats.get("updates", 0)))
        print(f"repeat {r}: plain {statistics.mean(p[1:]):.3f} s/epoch | Tune + rl {statistics.mean(t):.3f} s/epoch "
              f"| PPO updates during the run {updates[-1]}", flush=True)
    p_med = [statistics.median(x) for x in plain]
    t_med = [statistics.median(x) for x in tuned]
    ratios = [t / p - 1 for p, t in zip(p_med, t_med, strict=True)]
    extra = statistics.median(ratios)
    print(f"plain {statistics.median(p_med):.3f} s/epoch (range {min(p_med):.3f}-{max(p_med):.3f}) | Tune + rl "
          f"{statistics.median(t_med):.3f} (range {min(t_med):.3f}-{max(t_med):.3f}) -> {100 * extra:+.1f} % "
          f"(per-repeat {', '.join(f'{100 * x:+.1f}' for x in ratios)} %); PPO updates {updates}")
    write_result("overhead", {
        "config": args.config, "epochs": args.epochs, "repeats": args.repeats, "landmarks": landmarks,
        "train_batch_rows": batch_rows, "plain_s_per_epoch": plain, "tune_rl_s_per_epoch": tuned,
        "plain_median_s": statistics.median(p_med), "tune_rl_median_s": statistics.median(t_med),
        "plain_range_s": [min(p_med), max(p_med)], "tune_rl_range_s": [min(t_med), max(t_med)],
        "extra_fraction_per_repeat": ratios, "extra_fraction_median": extra,
        "extra_fraction_range": [min(ratios), max(ratios)], "ppo_updates_per_run": updates,
        "goal": "<= +5 % wall time per epoch", "goal_met": bool(extra <= 0.05 and min(updates) > 0),
    })
    ray.shutdown()


if __name__ == "__main__":
    main()
