"""Shared fixtures: one Ray runtime per test session, small configs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from distlmk.population.localray import init_ray

    init_ray(None, num_cpus=2, log_to_driver=False)  # private, loopback-only, like `distlmk search`
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("distlmk_cache")
    os.environ["DISTLMK_CACHE"] = str(path)
    return path


@pytest.fixture
def tiny_experiment(cache_dir):
    """A real-network experiment small enough for a few seconds per epoch on 2 cores."""
    from distlmk.config import ExperimentConfig, from_dict

    return from_dict(
        ExperimentConfig,
        {
            "name": "tiny",
            "data": {
                "format": "synthetic",
                "input_size": [64, 64],
                "num_train": 24,
                "num_val": 8,
                "num_test": 8,
                "synth_size": [128, 112],
                "root": str(cache_dir),
            },
            "model": {"base_channels": 8, "depth": 3},
            "train": {
                "epochs": 3,
                "batch_size": 8,
                "lr": 2e-3,
                "device": "cpu",
                "torch_threads": 1,
            },
            "sigma": {"method": "fixed", "init": 2.0},
        },
    )


_SUMMARY: list[str] = []


@pytest.fixture
def report_line():
    """Lines a test wants shown after the run (e.g. the RL learning margin), even when it passes."""
    return _SUMMARY.append


def pytest_terminal_summary(terminalreporter):
    if _SUMMARY:
        terminalreporter.section("distlmk figures")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
