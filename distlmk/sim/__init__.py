"""The simulator: a numpy cost model of per-landmark validation error under a sigma (`cost_model`, a
leaf), and the trainers built on it (`distlmk.sim.trainer`, imported by name: it loads the controllers
and torch, which `import distlmk.sim` does not)."""

from distlmk.sim.cost_model import LandmarkCostModel, rayleigh_sdr

__all__ = ["LandmarkCostModel", "rayleigh_sdr"]
