"""The simulator: a numpy cost model of per-landmark validation error under a sigma (a leaf)."""

from distlmk.sim.cost_model import LandmarkCostModel, rayleigh_sdr

__all__ = ["LandmarkCostModel", "rayleigh_sdr"]
