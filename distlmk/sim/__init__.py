"""The simulator: a numpy cost model of per-landmark validation error under a sigma (a leaf)."""

from distlmk.sim.cost_model import DIAG_MM, LandmarkCostModel, rayleigh_sdr

__all__ = ["DIAG_MM", "LandmarkCostModel", "rayleigh_sdr"]
