"""Typed specs of a search: what one trial is (`TrialSpec`) and what every trial shares (`RunSpec`).

Tune's param space holds `TrialSpec.as_config()` (plain values, so Tune can show and store them);
the trainable turns it back into a `TrialSpec` with every key required, never `.get` defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from distlmk.config import ExperimentConfig, FaultConfig, SimulationConfig, from_dict, to_dict


@dataclass(frozen=True)
class TrialSpec:
    """One grid point: a sigma method with its seed. Its identity survives retries and PBT exploits."""

    index: int  # position in the trial grid (fault injection addresses trials by it)
    method: str  # fixed | learned | adaloss | rl
    seed: int  # training seed, the same for every method
    variant: str  # method variant shown in reports ("fixed σ=2", "rl", ...)
    sigma_init: float | None = None  # fixed: this trial's sigma; None = the config's sigma.init
    replica: int = 0  # rl and variants: which of the replicas per seed
    sigma: dict | None = None  # a variant's overrides of experiment.sigma (per-landmark vector, schedule, rl)

    def as_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, d: dict) -> TrialSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = names - set(d), set(d) - names
        if missing or unknown:
            raise ValueError(f"trial spec {d!r}: missing {sorted(missing)}, unknown {sorted(unknown)}")
        return cls(**d)


@dataclass
class RunSpec:
    """What every trial of one search shares (passed once with tune.with_parameters)."""

    experiment: dict  # ExperimentConfig as a dict (the server name and device already resolved)
    cpu: float  # CPUs per trial process
    gpu: float  # GPU fraction per trial process (0: none)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    faults: list[FaultConfig] = field(default_factory=list)
    seed_varies: str = "network"  # SearchConfig.seed_varies: network | data | both

    def experiment_for(self, trial: TrialSpec, lr: float | None = None) -> ExperimentConfig:
        """The ExperimentConfig of one trial: shared settings + its method, seed, sigma and lr."""
        exp = from_dict(ExperimentConfig, self.experiment, "experiment")
        if trial.sigma:  # the variant's own sigma settings
            exp.sigma = from_dict(type(exp.sigma), deep_merge(to_dict(exp.sigma), trial.sigma),
                                  f"variant {trial.variant}.sigma")
        exp.sigma.method = trial.method
        if self.seed_varies in ("network", "both"):
            exp.train.seed = int(trial.seed)
        if self.seed_varies in ("data", "both"):
            exp.data.synth_seed = int(trial.seed)
        if trial.sigma_init is not None:
            exp.sigma.init = float(trial.sigma_init)
        if lr is not None:
            exp.train.lr = float(lr)
        exp.train.torch_threads = max(1, int(self.cpu))
        return exp

    def faults_for(self, trial: TrialSpec) -> list[FaultConfig]:
        return [f for f in self.faults if not f.trials or trial.index in f.trials]


def deep_merge(base: dict, over: dict) -> dict:
    """`base` with `over`'s keys replaced, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
