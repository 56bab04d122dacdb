"""Data pipeline vs model step: images/s of batching + OpenCV augmentation alone, beside the
trainer's full training images/s on the same split and thread count. The loader must never
be the bottleneck (ratio >> 1)."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import write_result
from distlmk.config import ExperimentConfig, load_yaml
from distlmk.data.transforms import iterate_batches
from distlmk.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tune_configs/synthetic_small.yaml")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_yaml(args.config, ExperimentConfig)
    cfg.train.device = "cpu"
    tr = Trainer(cfg)
    split = tr.splits["train"]
    n, t0 = 0, time.perf_counter()
    for rep in range(5):
        for x, _, _ in iterate_batches(split, cfg.train.batch_size, np.random.default_rng(rep), tr.augmenter):
            n += len(x)
    load_ips = n / (time.perf_counter() - t0)
    tr.train_epoch()  # warm-up
    t0 = time.perf_counter()
    _, seen = tr.train_epoch()
    train_ips = seen / (time.perf_counter() - t0)
    ratio = load_ips / train_ips
    print(f"loading + augmentation {load_ips:.0f} images/s | full training step {train_ips:.1f} images/s "
          f"-> the loader is {ratio:.0f}x faster than the model step ({args.threads} thread(s))")
    write_result("data_pipeline", {"config": args.config, "threads": args.threads, "load_images_per_s": load_ips,
                                   "train_images_per_s": train_ips, "ratio": ratio, "goal_met": ratio > 5})


if __name__ == "__main__":
    main()
