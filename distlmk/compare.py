"""`distlmk compare`: does a policy trained by a population set precision better than a careful user?

How to run:
    distlmk compare --config tune_configs/synthetic_benchmark.yaml [--out results] [--resume]
    distlmk compare --config ... --policy-checkpoint DIR/policy/final   # evaluate a saved policy

Every draw is its own data (`seed_varies: both`: the synthetic generator's seed and the network's
seed are the draw), so held-out draws share no image with the training draws. Stages (each a
`distlmk search` experiment under OUT/<name>/<stage>/, reused by --resume when finished):
  generation  gen<g>_d<draw>: a cold rl population (N members, Latin-square sigma per landmark, no
              grid) on each training draw; the policy learns, stage after stage
  grid        on every held-out draw: the fixed-sigma grid and N random sigma vectors; the draw's
              validation split chooses best fixed sigma and each landmark's sigma
  retrain     per-landmark static sigma (that draw's choice), learned, learned_anisotropic, adaloss
  population  <role>_d<draw>: Tune PBT and PB2 on sigma, landmark_pbt and the frozen rl policy, each
              N members x the same epochs, cold (no grid), best member on validation
Then `analysis.comparison` reads the test split once, journals the read (`rundir.TEST_READS`) and
writes the comparison's JSON, Markdown and plots.

Results to expect: README "Does the policy beat a sigma grid?" and
benchmarks/results/comparison_synthetic_benchmark.json.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from distlmk import rundir
from distlmk import schema as S
from distlmk.analysis.comparison import CompareRun, write_comparison
from distlmk.config import (
    CompareConfig,
    ConfigError,
    LandmarkPBTOverrides,
    RLControlOverrides,
    SearchConfig,
    SigmaOverrides,
    VariantConfig,
    to_dict,
)
from distlmk.control.landmark_pbt import latin_sigmas
from distlmk.population.selection import best_by_val, per_landmark_choice
from distlmk.runner import search
from distlmk.stages import SINGLE_ROLES, Role, StageKind, StageSpec, fixed_variant


@dataclass
class StageResult:
    spec: StageSpec
    exp_dir: Path
    summary: pd.DataFrame
    policy_stats: dict


def random_sigmas(members: int, num_landmarks: int, lo: float, hi: float, seed) -> np.ndarray:
    """[N, L] independent log-uniform sigma per member and landmark (the `random` control)."""
    u = np.random.default_rng(seed).uniform(size=(members, num_landmarks))
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


def _members(name: str, method: str, sigmas: np.ndarray, draw: int, **overrides) -> list[VariantConfig]:
    """One variant per member of a population on `draw`, each starting at its own sigma vector."""
    return [VariantConfig(str(name), method, SigmaOverrides(per_landmark=[round(float(x), 4) for x in row],
                                                            **overrides), seeds=[draw]) for row in sigmas]


class Arena:
    """Plans and runs the stages of one comparison, then hands them to analysis."""

    def __init__(self, cfg: CompareConfig, out_dir: str = "results", address: str | None = None,
                 resume: bool = False, policy_checkpoint: str | None = None):
        self.cfg, self.address, self.resume, self.policy_checkpoint = cfg, address, resume, policy_checkpoint
        if cfg.generation_size < 0:
            raise ConfigError(f"generation_size: {cfg.generation_size} members; give 0 (population_size) or more")
        self.root = Path(out_dir).expanduser().resolve() / cfg.name
        self.stages: list[StageResult] = []
        self.started = time.time()
        self.lo, self.hi = min(cfg.grid_sigmas), max(cfg.grid_sigmas)
        self.num_landmarks = self._num_landmarks()
        self.planned: list[SearchConfig] = []  # every stage's search, in order
        self.dry_run = False  # plan only (`plan_stages`): nothing runs

    def _num_landmarks(self) -> int:
        data = self.cfg.base.experiment.data
        if self.cfg.base.simulation.enabled or data.format == "synthetic":
            return data.num_landmarks
        from distlmk.data import load_dataset

        return load_dataset(data).num_landmarks

    # --- one stage ------------------------------------------------------------------------
    def stage_config(self, spec: StageSpec, variants: list[VariantConfig], *, scheduler: dict | None = None,
                     policy_checkpoint: str | None = None, freeze: bool = False, warm_start: bool = False,
                     policy_seed: int = 0) -> SearchConfig:
        """The stage's search: the base settings, its variants on its draws, a draw being data and network."""
        sc: SearchConfig = copy.deepcopy(self.cfg.base)
        sc.name, sc.methods, sc.variants, sc.seeds = spec.name, [], variants, list(spec.draws)
        sc.seed_varies = "both"  # a draw is new images and a new network
        sc.experiment.train.evaluate_test = spec.evaluates_test
        sc.policy.checkpoint = policy_checkpoint
        sc.policy.freeze = freeze
        sc.policy.explore = not freeze  # a frozen policy acts greedily
        sc.policy.seed += policy_seed  # each stage explores with its own random stream
        if not warm_start or policy_checkpoint:
            sc.policy.pretrain_rounds = 0
        for k, v in (scheduler or {}).items():
            setattr(sc.scheduler, k, v)
        return sc

    def run_stage(self, spec: StageSpec, variants: list[VariantConfig], **settings) -> StageResult:
        """Run one stage (or reuse it on --resume when it finished); `settings` go to `stage_config`."""
        self.planned.append(self.stage_config(spec, variants, **settings))
        if self.dry_run:
            return StageResult(spec, self.root / spec.name, pd.DataFrame(), {})
        exp_dir = self.root / spec.name
        if self.resume and rundir.has_finished(exp_dir):
            print(f"[compare] stage {spec.name}: done earlier, reusing it", flush=True)
        else:
            from ray import tune

            partial = self.resume and exp_dir.is_dir() and tune.Tuner.can_restore(str(exp_dir))
            print(f"[compare] stage {spec.name}: {len(variants)} trial variants on draws {list(spec.draws)}"
                  + (" (resuming)" if partial else ""), flush=True)
            exp_dir = search(self.planned[-1], out_dir=str(self.root), address=self.address, resume=partial,
                             quiet=True).exp_dir
        result = StageResult(spec, exp_dir, rundir.read_summary(exp_dir), rundir.read_policy_stats(exp_dir) or {})
        failed = result.summary[result.summary["status"] == "error"]
        if len(failed):
            raise RuntimeError(f"stage {spec.name}: {len(failed)} trial(s) failed; see {exp_dir / rundir.REPORT_FILE}")
        self.stages.append(result)
        return result

    # --- (a) the policy's generations on the training draws -------------------------------------
    def generations(self) -> str | None:
        """Cold rl populations train the policy; returns its final checkpoint (None: no rl)."""
        checkpoint = None
        n, L = self.cfg.generation_size or self.cfg.population_size, self.num_landmarks
        for g in range(1, self.cfg.generations + 1):
            for draw in self.cfg.train_draws:
                spec = StageSpec(f"gen{g}_d{draw}", StageKind.GENERATION, (draw,), (Role.RL,), generation=g)
                sigmas = latin_sigmas(n, L, self.lo, self.hi, seed=[draw, 2, g])
                stage = self.run_stage(spec, _members("rl", "rl", sigmas, draw), policy_checkpoint=checkpoint,
                                       warm_start=checkpoint is None, policy_seed=1000 * g + draw)
                checkpoint = str(rundir.final_policy(stage.exp_dir))
        return checkpoint

    # --- (b) every method on the held-out draws ---------------------------------------------
    def grid_variants(self) -> StageResult:
        c, n, L = self.cfg, self.cfg.population_size, self.num_landmarks
        variants = [VariantConfig(fixed_variant(s), "fixed", SigmaOverrides(init=s)) for s in c.grid_sigmas]
        roles = (Role.BEST_FIXED,)
        if "random" in c.baselines:
            roles += (Role.RANDOM,)
            for d in c.heldout_draws:
                variants += _members(Role.RANDOM, "fixed", random_sigmas(n, L, self.lo, self.hi, seed=[d, 1]), d)
        return self.run_stage(StageSpec("grid", StageKind.GRID, tuple(c.heldout_draws), roles), variants)

    def grid(self) -> dict[int, dict]:
        """Grid + random members on every held-out draw; per draw, the choices its validation split makes."""
        c, stage = self.cfg, self.grid_variants()
        sigma_of = {fixed_variant(s): s for s in c.grid_sigmas}
        choices = {}
        for d in c.heldout_draws:
            own = stage.summary[stage.summary[S.SEED] == d]
            best = best_by_val(own, list(sigma_of))
            per_landmark, picks = per_landmark_choice(own, sigma_of)
            choices[d] = {"best_fixed": best, "best_fixed_sigma": sigma_of[best], "per_landmark_sigma": per_landmark,
                          "per_landmark_pick": picks}
        return choices

    def retrain(self, choices: dict[int, dict]) -> None:
        c = self.cfg
        variants = [VariantConfig(str(Role.PER_LANDMARK_STATIC), "fixed", SigmaOverrides(per_landmark=ch["per_landmark_sigma"]),
                                  seeds=[d]) for d, ch in choices.items()]
        singles = tuple(r for r in SINGLE_ROLES if r in c.baselines)
        variants += [VariantConfig(str(r), str(r)) for r in singles]
        self.run_stage(StageSpec("retrain", StageKind.RETRAIN, tuple(c.heldout_draws),
                                 (Role.PER_LANDMARK_STATIC, *singles)), variants)

    def populations(self, policy: str | None) -> None:
        """One population of N members per role and held-out draw, all started without the grid."""
        c, n, L = self.cfg, self.cfg.population_size, self.num_landmarks
        mid = float(np.sqrt(self.lo * self.hi))  # Tune's schedulers sample scale x factors around it
        for d in c.heldout_draws:
            design = latin_sigmas(n, L, self.lo, self.hi, seed=[d, 2])  # the same cold start for both policies
            for role in (Role.PBT, Role.PB2):
                if role in c.baselines:
                    self.run_stage(StageSpec(f"{role}_d{d}", StageKind.POPULATION, (d,), (role,)),
                                   [VariantConfig(str(role), "fixed", SigmaOverrides(init=mid), replicas=n, seeds=[d])],
                                   scheduler={"name": str(role), "pbt_mutate": "sigma",
                                              "perturbation_interval": c.perturbation_interval})
            if Role.LANDMARK_PBT in c.baselines:
                self.run_stage(StageSpec(f"landmark_pbt_d{d}", StageKind.POPULATION, (d,), (Role.LANDMARK_PBT,)),
                               _members(Role.LANDMARK_PBT, "landmark_pbt", design, d,
                                        landmark_pbt=LandmarkPBTOverrides(interval=c.perturbation_interval)),
                               freeze=True)
            if policy:
                self.run_stage(StageSpec(f"rl_d{d}", StageKind.POPULATION, (d,), (Role.RL,)),
                               _members(Role.RL, "rl", design, d, rl=RLControlOverrides(allow_stop=False)),
                               policy_checkpoint=policy, freeze=True)

    def run(self) -> CompareRun:
        if not self.resume and self.root.exists():  # a fresh comparison never mixes with an old one
            old = self.root.with_name(f"{self.root.name}.{time.strftime('%Y%m%d-%H%M%S')}")
            self.root.rename(old)
            print(f"moved the previous comparison to {old}")
        policy = self.policy_checkpoint or self.generations()
        choices = self.grid()
        self.retrain(choices)
        self.populations(policy)
        return CompareRun(
            root=self.root, config=to_dict(self.cfg), choices=choices, policy=policy,
            stages=[s.spec for s in self.stages], summaries={s.spec.name: s.summary for s in self.stages},
            policy_stats={s.spec.name: s.policy_stats for s in self.stages}, elapsed_s=time.time() - self.started,
            stages_elapsed_s=sum(rundir.read_run_info(s.exp_dir).elapsed_s for s in self.stages))


def plan_stages(cfg: CompareConfig) -> list[SearchConfig]:
    """Every stage's search as `run` would start it, without running anything (the held-out stages are
    planned with the grid's choices left at the config's sigma.init)."""
    arena = Arena(cfg)
    arena.dry_run = True
    arena.generations()
    arena.grid_variants()
    arena.retrain({d: {"per_landmark_sigma": [cfg.base.experiment.sigma.init] * arena.num_landmarks}
                   for d in cfg.heldout_draws})
    arena.populations("planned-policy")
    return arena.planned


def run_compare(cfg: CompareConfig, out_dir: str = "results", address: str | None = None, resume: bool = False,
                policy_checkpoint: str | None = None) -> Path:
    """Run (or resume) every stage, then write the comparison; returns the Markdown report's path."""
    return write_comparison(Arena(cfg, out_dir, address, resume, policy_checkpoint).run())
