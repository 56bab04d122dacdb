"""`distlmk ablate`: the simulated population at several sizes and resources per trial.

This runs the populations; measuring them (trial-epochs/h, time to target, policy load) is
analysis (`distlmk.analysis.scaling`), called by the command layer."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

from distlmk.config import AblationConfig
from distlmk.population.search import run_search


def ablation_runs(cfg: AblationConfig) -> list[tuple[dict, object]]:
    """(row labels, SearchConfig) per population size and CPU share; simulated trials are packed
    so that at most `max_trial_processes` Tune trial processes run."""
    runs = []
    for n in cfg.population_sizes:
        for cpu in cfg.cpu_per_trial:
            pack = max(1, math.ceil(n / cfg.max_trial_processes))
            processes = math.ceil(n / pack)
            search = copy.deepcopy(cfg.base)
            search = dataclasses.replace(search, name=f"n{n}_cpu{cpu:g}", methods=["rl"], seeds=[0],
                                         rl_trials_per_seed=processes)
            search.simulation = dataclasses.replace(search.simulation, enabled=True, pack=pack)
            search.resources.cpu = cpu
            runs.append(({"trials": processes * pack, "cpu_per_process": cpu, "pack": pack,
                          "processes": processes}, search))
    return runs


def run_ablation(cfg: AblationConfig, out_dir: str = "results", address: str | None = None) -> Iterator[tuple[dict, Path]]:
    """Run every population of the ablation under `out_dir/<name>`; yields (labels, experiment dir)."""
    root = Path(out_dir).resolve() / cfg.name
    for labels, search in ablation_runs(cfg):
        yield labels, run_search(search, out_dir=str(root), address=address, quiet=True).exp_dir
