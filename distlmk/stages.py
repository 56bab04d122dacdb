"""The arena's typed structure: what each `distlmk compare` stage is and which baseline role it holds.

`distlmk.compare` (the driver) plans and runs stages; `distlmk.analysis.comparison` reads the same
`StageSpec`s back from `stages.json`, so neither rebuilds the structure from folder names. Adding a
baseline is one `Role` here plus the stage that runs it in `distlmk.compare.plan_stages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A method as the comparison reports it. Population roles choose their best member on validation."""

    BEST_FIXED = "best_fixed_by_val"  # the grid's best single sigma on the draw's validation split
    PER_LANDMARK_STATIC = "per_landmark_static"  # each landmark's best grid sigma on validation, retrained
    LEARNED = "learned"
    LEARNED_ANISOTROPIC = "learned_anisotropic"
    ADALOSS = "adaloss"
    RANDOM = "random"  # N random sigma vectors, log-uniform per landmark
    PBT = "pbt"  # Tune PopulationBasedTraining on sigma
    PB2 = "pb2"  # Tune PB2 on sigma
    LANDMARK_PBT = "landmark_pbt"  # per landmark, bottom members copy a top member's sigma (no weights)
    RL = "rl"  # the frozen central policy on a cold-started population


#: roles whose model is the best of N members on validation (same N and epochs each)
POPULATION_ROLES = (Role.RANDOM, Role.PBT, Role.PB2, Role.LANDMARK_PBT, Role.RL)
#: roles run as single trials on each held-out draw
SINGLE_ROLES = (Role.LEARNED, Role.LEARNED_ANISOTROPIC, Role.ADALOSS)


class StageKind(StrEnum):
    GENERATION = "generation"  # rl populations on training draws train the policy (test never evaluated)
    GRID = "grid"  # fixed-sigma grid (+ random members) on every held-out draw: choices on validation
    RETRAIN = "retrain"  # per-landmark static sigma (from the grid) and the single-trial baselines
    POPULATION = "population"  # one population (PBT, PB2, landmark_pbt or rl) on one held-out draw


@dataclass(frozen=True)
class StageSpec:
    """One stage: a `distlmk search` experiment in `<root>/<name>/`."""

    name: str
    kind: StageKind
    draws: tuple[int, ...]  # data draws (seeds) its trials run on
    roles: tuple[Role, ...] = ()  # roles whose final models it holds (GRID: best fixed + random)
    generation: int = 0  # GENERATION: which wave (1..G)

    @property
    def evaluates_test(self) -> bool:
        return self.kind is not StageKind.GENERATION

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": str(self.kind), "draws": list(self.draws),
                "roles": [str(r) for r in self.roles], "generation": self.generation}

    @classmethod
    def from_dict(cls, d: dict) -> StageSpec:
        return cls(d["name"], StageKind(d["kind"]), tuple(int(x) for x in d["draws"]),
                   tuple(Role(r) for r in d["roles"]), int(d["generation"]))


def fixed_variant(sigma: float) -> str:
    """The grid member's variant name (records, reports)."""
    return f"fixed σ={sigma:g}"
