"""One plan per trial, made once on the driver before Ray starts.

`plan_trials` turns a `SearchConfig` and the landmark count of the loaded data into one
`TrialPlan` per trial: its identity (index, method, seed, variant, replica) and its complete,
typed `ExperimentConfig` (method, seed, sigma with the variant's overrides, per-landmark
vectors). Every config error, inside variants too, is raised here as a `ConfigError` naming
the key. Tune's param space holds `TrialPlan.as_config()` (plain values); the trainable reads it
back with `TrialPlan.from_config` (every key required) and applies what Tune mutates (lr, or
sigma as a global scale x per-landmark factors) with `apply_mutations`, on a fresh start and
on a restore alike: always to the plan, so nothing is scaled twice.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass

from distlmk.config import ConfigError, ExperimentConfig, SearchConfig, SigmaConfig, from_dict, to_dict, validate_search


@dataclass(frozen=True)
class TrialPlan:
    """One trial of a search. Its identity survives retries and PBT exploits."""

    index: int  # position in the trial list (fault injection addresses trials by it)
    method: str  # the sigma controller (also experiment.sigma.method)
    seed: int  # the trial's seed, the same for every method; what it varies: SearchConfig.seed_varies
    variant: str  # label shown in reports ("fixed σ=2", "rl", a variant's name)
    replica: int  # rl and variants: which of the replicas per seed
    num_landmarks: int  # landmarks of the loaded data (simulation: data.num_landmarks)
    experiment: ExperimentConfig  # everything the trial trains with, before Tune's mutations

    def as_config(self) -> dict:
        """Plain values for Tune's param space."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "experiment"},
                "experiment": to_dict(self.experiment)}

    @classmethod
    def from_config(cls, d: dict) -> TrialPlan:
        """The plan back from `as_config()`; a missing or unknown key (at any depth) is an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = names - set(d), set(d) - names
        if missing or unknown:
            raise ValueError(f"trial plan: missing {sorted(missing)}, unknown {sorted(unknown)}")
        _require_every_key(ExperimentConfig, d["experiment"], "trial plan: experiment")
        exp = from_dict(ExperimentConfig, d["experiment"], "trial plan: experiment")
        return cls(index=int(d["index"]), method=str(d["method"]), seed=int(d["seed"]), variant=str(d["variant"]),
                   replica=int(d["replica"]), num_landmarks=int(d["num_landmarks"]), experiment=exp)


def _require_every_key(cls: type, d: dict, where: str) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in d:
            raise ValueError(f"{where}.{f.name}: missing")
        if dataclasses.is_dataclass(hints[f.name]):
            _require_every_key(hints[f.name], d[f.name], f"{where}.{f.name}")


# --- the search as a whole (its cross-field rules: distlmk.config.validate_search) -------------


BOARD_METHODS = frozenset({"rl", "landmark_pbt"})  # the methods whose members post to a board on the policy server


def uses_policy(cfg: SearchConfig) -> bool:
    """Whether any trial is rl or landmark_pbt (then the central policy server runs: it holds the boards)."""
    return bool(BOARD_METHODS & cfg.all_methods())


def policy_server_name(cfg: SearchConfig) -> str:
    return f"{cfg.experiment.sigma.rl.server_name}:{cfg.name}"


def _check_lengths(sigma: SigmaConfig, num_landmarks: int, key: str) -> None:
    if sigma.per_landmark and len(sigma.per_landmark) != num_landmarks:
        raise ConfigError(f"{key}: {len(sigma.per_landmark)} values for {num_landmarks} landmarks in the data; "
                          "give one sigma per landmark or leave it empty")


# --- the plan -----------------------------------------------------------------------------


def plan_trials(cfg: SearchConfig, num_landmarks: int) -> list[TrialPlan]:
    """Every trial of the search, in order: per seed, the `methods` grid (fixed: one trial per
    fixed sigma; rl: `rl_trials_per_seed` replicas), then the named variants. The same seeds and
    budget for all. Raises `ConfigError` (naming the key) on any config error."""
    validate_search(cfg)
    base = copy.deepcopy(cfg.experiment)
    base.sigma.rl.server_name = policy_server_name(cfg)
    if cfg.methods:
        _check_lengths(base.sigma, num_landmarks, "experiment.sigma.per_landmark")
    variant_sigmas = []
    for i, v in enumerate(cfg.variants):
        sigma = v.sigma.apply_to(base.sigma)
        own = f"variants[{i}].sigma"
        _check_lengths(sigma, num_landmarks,
                       f"{own}.per_landmark" if v.sigma.per_landmark is not None else "experiment.sigma.per_landmark")
        variant_sigmas.append(sigma)

    plans: list[TrialPlan] = []

    def add(method: str, seed: int, variant: str, sigma: SigmaConfig, replica: int = 0) -> None:
        exp = copy.deepcopy(base)
        exp.sigma = copy.deepcopy(sigma)
        exp.sigma.method = method
        if cfg.seed_varies in ("network", "both"):  # the network's initialisation and batches
            exp.train.seed = int(seed)
        if cfg.seed_varies in ("data", "both"):  # an unseen synthetic draw: new images, its own splits
            exp.data.synth_seed = int(seed)
        if method in BOARD_METHODS:  # its board draws keyed by its place in the plan: a rerun draws the same
            exp.sigma.rl.member = len(plans)
        plans.append(TrialPlan(len(plans), method, int(seed), variant, replica, num_landmarks, exp))

    for seed in cfg.seeds:
        for method in cfg.methods:
            if method == "fixed":
                for s in cfg.fixed_sigmas:
                    add("fixed", seed, f"fixed σ={s:g}", dataclasses.replace(base.sigma, init=float(s)))
            elif method == "rl":
                for r in range(cfg.rl_trials_per_seed):
                    add("rl", seed, "rl", base.sigma, r)
            else:
                add(method, seed, method, base.sigma)
        for v, sigma in zip(cfg.variants, variant_sigmas, strict=True):
            for r in range(v.replicas if v.seeds is None or seed in v.seeds else 0):
                add(v.method, seed, v.name, sigma, r)
    return plans


def fit_to_resources(plan: TrialPlan, cpu: float, gpu: float) -> TrialPlan:
    """The plan for the resources Ray grants each trial: torch threads from the CPUs, and
    device auto means cpu when the trial gets no GPU."""
    exp = copy.deepcopy(plan.experiment)
    exp.train.torch_threads = max(1, int(cpu))
    if gpu <= 0 and exp.train.device == "auto":
        exp.train.device = "cpu"
    return dataclasses.replace(plan, experiment=exp)


# --- what Tune mutates ------------------------------------------------------------------------


def apply_mutations(plan: TrialPlan, tune_config: dict) -> ExperimentConfig:
    """The experiment a trial trains with: its plan with what Tune sampled or mutated (PBT/PB2):
    `lr`, or sigma as `sigma_scale` x `sigma_factor_<k>` on the plan's sigma (per_landmark, or init
    for every landmark), clipped to [sigma.min, sigma.max]. Always from the plan, never from an
    already mutated experiment: a fresh start and a restore get the same values."""
    exp = copy.deepcopy(plan.experiment)
    if "lr" in tune_config:
        exp.train.lr = float(tune_config["lr"])
    if "sigma_scale" in tune_config:
        s = exp.sigma
        base = list(s.per_landmark) or [s.init] * plan.num_landmarks
        scale = float(tune_config["sigma_scale"])
        s.per_landmark = [min(max(b * scale * float(tune_config[f"sigma_factor_{k}"]), s.min), s.max)
                          for k, b in enumerate(base)]
    return exp
