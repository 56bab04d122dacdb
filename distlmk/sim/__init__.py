"""The simulator: numpy models of per-landmark validation error under a sigma (leaves), and the
trainers built on them (`distlmk.sim.trainer`, imported by name: it loads the controllers and torch,
which `import distlmk.sim` does not).

- `cost_model.LandmarkCostModel` ("cost_model"): independent landmarks, sigma acts at once; the
  fast, well-known dynamics of the learning test and the server benchmarks.
- `network_model.NetworkCostModel` ("network"): the population simulator's trial, landmarks
  coupled through one network, sigma effects with memory, calibrated on real grid runs.
"""

from distlmk.sim.cost_model import LandmarkCostModel, rayleigh_sdr
from distlmk.sim.network_model import CALIBRATED, NetworkCostModel, SimulatorParams

SIMULATORS = {"cost_model": LandmarkCostModel, "network": NetworkCostModel}

__all__ = ["CALIBRATED", "SIMULATORS", "LandmarkCostModel", "NetworkCostModel", "SimulatorParams", "rayleigh_sdr"]
