"""What every trial of one search shares (`RunSpec`); what one trial is lives in its plan
(`distlmk.population.plan.TrialPlan`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from distlmk.config import FaultConfig, SimulationConfig


@dataclass
class RunSpec:
    """What every trial of one search shares (passed once with tune.with_parameters)."""

    gpu: float  # GPU fraction per trial process (0: none)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    faults: list[FaultConfig] = field(default_factory=list)

    def faults_for(self, index: int) -> list[FaultConfig]:
        """The faults injected into the trial at this index."""
        return [f for f in self.faults if not f.trials or index in f.trials]
