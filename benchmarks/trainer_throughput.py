"""Trainer throughput (training images/s, the full real path: augmentation, targets, U-Net,
loss, optimiser) and, when CUDA is there, the CPU vs GPU ratio on the same config."""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import write_result
from distlmk.config import ExperimentConfig, load_yaml
from distlmk.data import load_dataset
from distlmk.train.trainer import Trainer


def measure(cfg: ExperimentConfig, device: str, epochs: int) -> dict:
    cfg.train.device = device
    cfg.train.epochs = epochs + 1
    tr = Trainer(cfg, dataset=load_dataset(cfg.data))
    tr.train_epoch()  # warm-up (allocator, cudnn autotune)
    tr.epoch += 1
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        _, seen = tr.train_epoch()
        tr.epoch += 1
        n += seen
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"device": device, "images": n, "seconds": dt, "images_per_s": n / dt}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tune_configs/synthetic_small.yaml")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    cfg = load_yaml(args.config, ExperimentConfig)
    rows = [measure(cfg, "cpu", args.epochs)]
    if torch.cuda.is_available():
        rows.append(measure(load_yaml(args.config, ExperimentConfig), "cuda", args.epochs))
    for r in rows:
        print(
            f"{r['device']}: {r['images_per_s']:.1f} training images/s ({r['images']} images in {r['seconds']:.1f} s)"
        )
    out = {"config": args.config, "runs": rows, "torch_threads": torch.get_num_threads()}
    if len(rows) == 2:
        out["gpu_over_cpu"] = rows[1]["images_per_s"] / rows[0]["images_per_s"]
        print(f"GPU / CPU throughput: {out['gpu_over_cpu']:.1f}x")
    write_result("trainer_throughput", out)


if __name__ == "__main__":
    main()
