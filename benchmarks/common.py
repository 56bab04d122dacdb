"""Shared benchmark helpers: timing and JSON output under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
_LOAD_AT_START = os.getloadavg()[0]  # the host's 1-minute load when the benchmark started


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Best wall time (seconds) of `number` calls, over `repeat` rounds."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _main_module(name: str) -> str:
    """The module this run was started as (`python -m ...`); a result named after it otherwise."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None else "benchmarks." + name.split("_frozen")[0]


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "command": " ".join([f"python -m {_main_module(name)}", *sys.argv[1:]]),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        # other processes on the host: a load above the core count means the figures are slowed by them
        "loadavg_1m_start_end": [round(_LOAD_AT_START, 2), round(os.getloadavg()[0], 2)],
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"-> {path}")
    return path
