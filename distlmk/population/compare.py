"""`distlmk compare`: is the central policy better than what a careful user does by hand?

How to run:
    distlmk compare --config tune_configs/synthetic_benchmark.yaml [--out results] [--resume]

Stages (each a `distlmk search` experiment under DIR/<name>/, skipped on --resume when done):
  (a) grid      fixed sigma grid + coarse-to-fine schedules on the training seeds, no test
                evaluation; choose best fixed sigma, each landmark's sigma and the schedule on
                validation
  (b) gen<g>    generations of rl trials (real networks) on the training seeds train the
                central policy; each starts from the previous generation's policy. The rl
                trials get the per-landmark choice as population context and start there
                (`rl_start: reference`) or at the best fixed sigma. `cold<g>`: the same
                without the simulator warm start
  (c) heldout   every method on held-out seeds with the policy frozen (greedy); `pbt_s<seed>`:
                Tune PBT mutating sigma, one population per held-out seed
Then `analysis.comparison` reads the held-out test split once and writes the comparison's
JSON, Markdown and plots.

Results to expect: see README ("Does the policy beat a sigma grid?") and the committed
benchmarks/results/comparison_synthetic_benchmark.json.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from distlmk import rundir
from distlmk import schema as S
from distlmk.config import CompareConfig, SearchConfig, VariantConfig, to_dict
from distlmk.population.selection import best_by_val, per_landmark_choice

log = logging.getLogger("distlmk.compare")


@dataclass
class Stage:
    """One finished stage: its experiment folder and one summary row per trial."""

    name: str
    exp_dir: Path
    summary: pd.DataFrame
    policy_stats: dict = field(default_factory=dict)


def fixed_name(sigma: float) -> str:
    return f"fixed σ={sigma:g}"


def schedule_name(spec) -> str:
    return f"schedule {spec.start:g}→{spec.end:g} {spec.shape}"


class Comparison:
    """`search` runs one population and writes its summary (the command layer's `distlmk.cli.search`:
    population code does not import analysis, so the caller hands it in)."""

    def __init__(self, cfg: CompareConfig, search, out_dir: str = "results", address: str | None = None,
                 resume: bool = False):
        self.cfg, self.search, self.address, self.resume = cfg, search, address, resume
        self.root = Path(out_dir).expanduser().resolve() / cfg.name
        self.stages: dict[str, Stage] = {}
        self.started = time.time()

    # --- running one stage ----------------------------------------------------------
    def run_stage(self, name: str, variants: list[VariantConfig], seeds: list[int], *, evaluate_test: bool,
                  policy_checkpoint: str | None = None, freeze: bool = False, warm_start: bool = True,
                  scheduler: dict | None = None, policy_seed: int = 0) -> Stage:
        exp_dir = self.root / name
        if self.resume and rundir.has_finished(exp_dir):
            log.info("stage %s: done earlier, reusing %s", name, exp_dir)
        else:
            sc: SearchConfig = copy.deepcopy(self.cfg.base)
            sc.name, sc.methods, sc.variants, sc.seeds = name, [], variants, list(seeds)
            sc.experiment.train.evaluate_test = evaluate_test
            sc.policy.checkpoint = policy_checkpoint
            sc.policy.freeze = freeze
            sc.policy.explore = not freeze  # a frozen policy acts greedily
            sc.policy.seed += policy_seed  # each generation explores with its own random stream
            if not warm_start or policy_checkpoint:
                sc.policy.pretrain_rounds = 0
            if scheduler:
                for k, v in scheduler.items():
                    setattr(sc.scheduler, k, v)
            from ray import tune

            partial = self.resume and exp_dir.is_dir() and tune.Tuner.can_restore(str(exp_dir))
            print(f"[compare] stage {name}: {len(variants)} variants x {len(seeds)} seeds"
                  + (" (resuming)" if partial else ""), flush=True)
            exp_dir = self.search(sc, out_dir=str(self.root), address=self.address, resume=partial,
                                  quiet=True).exp_dir
        stage = Stage(name, exp_dir, rundir.read_summary(exp_dir), rundir.read_policy_stats(exp_dir) or {})
        failed = stage.summary[stage.summary["status"] == "error"]
        if len(failed):
            raise RuntimeError(f"stage {name}: {len(failed)} trial(s) failed; see {exp_dir / rundir.REPORT_FILE}")
        self.stages[name] = stage
        return stage

    # --- the three stages -----------------------------------------------------------
    def grid(self) -> dict:
        c = self.cfg
        variants = [VariantConfig(fixed_name(s), "fixed", {"init": s}) for s in c.grid_sigmas]
        variants += [VariantConfig(schedule_name(p), "schedule", {"schedule_start": p.start, "schedule_end": p.end,
                                                                  "schedule_shape": p.shape}) for p in c.schedules]
        stage = self.run_stage("grid", variants, c.train_seeds, evaluate_test=False)
        sigma_of = {fixed_name(s): s for s in c.grid_sigmas}
        best_fixed = best_by_val(stage.summary, list(sigma_of))
        per_landmark, picks = per_landmark_choice(stage.summary, sigma_of)
        best_schedule = best_by_val(stage.summary, [schedule_name(p) for p in c.schedules])
        spec = next(p for p in c.schedules if schedule_name(p) == best_schedule)
        return {"best_fixed": best_fixed, "best_fixed_sigma": sigma_of[best_fixed], "per_landmark_sigma": per_landmark,
                "per_landmark_pick": picks, "schedule": best_schedule, "schedule_spec": to_dict(spec),
                "trial_epochs": _trial_epochs(stage.summary)}

    def rl_variant(self, choice: dict, name: str = "rl", replicas: int = 1, allow_stop: bool | None = None):
        rl = {"reference": choice["per_landmark_sigma"]}
        if allow_stop is not None:
            rl["allow_stop"] = allow_stop
        start = choice["per_landmark_sigma"] if self.cfg.rl_start == "reference" else []
        return VariantConfig(name, "rl", {"init": choice["best_fixed_sigma"], "per_landmark": start, "rl": rl}, replicas)

    def generations(self, choice: dict, prefix: str, warm_start: bool) -> tuple[list[dict], str]:
        """Train the policy on successive waves of rl trials; returns (learning curve, final policy)."""
        curve, checkpoint = [], None
        for g in range(1, self.cfg.generations + 1):
            stage = self.run_stage(f"{prefix}{g}", [self.rl_variant(choice, replicas=self.cfg.rl_replicas)],
                                   self.cfg.train_seeds, evaluate_test=False, policy_checkpoint=checkpoint,
                                   warm_start=warm_start, policy_seed=g)
            checkpoint = str(rundir.final_policy(stage.exp_dir))
            s = stage.summary
            curve.append({
                "generation": g, "rl_val_mre_mm": float(s[S.VAL_MRE].mean()),
                "rl_val_mre_mm_per_trial": s[S.VAL_MRE].round(4).tolist(),
                "mean_epochs": float(s["epochs"].mean()), "trial_epochs": _trial_epochs(s),
                "mean_trial_return": float(s["rl/total_reward"].mean()),
                "policy_updates": stage.policy_stats.get("updates"),
                "policy_started_from": stage.policy_stats.get("restored_from"),
            })
        return curve, checkpoint

    def heldout(self, choice: dict, policies: dict[str, str]) -> None:
        c = self.cfg
        spec = choice["schedule_spec"]
        variants = [
            VariantConfig("best_fixed_by_val", "fixed", {"init": choice["best_fixed_sigma"]}),
            VariantConfig("per_landmark_static", "fixed", {"per_landmark": choice["per_landmark_sigma"]}),
            VariantConfig("schedule", "schedule", {"schedule_start": spec["start"], "schedule_end": spec["end"],
                                                   "schedule_shape": spec["shape"]}),
        ]
        variants += [VariantConfig(b, b) for b in c.baselines if b in ("learned", "learned_anisotropic", "adaloss")]
        final = policies["rl"]
        variants.append(self.rl_variant(choice, "rl", allow_stop=False))
        if c.rl_stop_variant:
            variants.append(self.rl_variant(choice, "rl_stop", allow_stop=True))
        self.run_stage("heldout", variants, c.heldout_seeds, evaluate_test=True, policy_checkpoint=final,
                       freeze=True)
        if "rl_cold" in policies:
            self.run_stage("heldout_cold", [self.rl_variant(choice, "rl_cold", allow_stop=False)], c.heldout_seeds,
                           evaluate_test=True, policy_checkpoint=policies["rl_cold"], freeze=True)
        if "pbt" in c.baselines:
            for seed in c.heldout_seeds:  # PBT copies weights between members: one population per seed
                self.run_stage(f"pbt_s{seed}", [VariantConfig("pbt", "fixed", {"init": choice["best_fixed_sigma"]},
                                                              c.pbt_population)],
                               [seed], evaluate_test=True,
                               scheduler={"name": "pbt", "pbt_mutate": "sigma",
                                          "perturbation_interval": c.pbt_perturbation_interval})

    def run(self) -> dict:
        """Run every stage; returns what `analysis.comparison.write_comparison` reports."""
        if not self.resume and self.root.exists():  # a fresh comparison never mixes with an old one
            old = self.root.with_name(f"{self.root.name}.{time.strftime('%Y%m%d-%H%M%S')}")
            self.root.rename(old)
            print(f"moved the previous comparison to {old}")
        choice = self.grid()
        curve, final = self.generations(choice, "gen", warm_start=True)
        policies = {"rl": final}
        cold_curve = None
        if self.cfg.cold_start_ablation and self.cfg.base.policy.pretrain_rounds > 0:
            cold_curve, policies["rl_cold"] = self.generations(choice, "cold", warm_start=False)
        self.heldout(choice, policies)
        return {"root": self.root, "config": to_dict(self.cfg), "choice": choice, "learning_curve": curve,
                "learning_curve_cold": cold_curve, "summaries": {n: s.summary for n, s in self.stages.items()},
                "elapsed_s": time.time() - self.started, "stages_elapsed_s": sum(
                    rundir.read_run_info(st.exp_dir).elapsed_s for st in self.stages.values())}


def _trial_epochs(summary: pd.DataFrame) -> int:
    return int(summary[S.COST_TRIAL_EPOCHS].sum())


def run_compare(cfg: CompareConfig, search, out_dir: str = "results", address: str | None = None,
                resume: bool = False) -> dict:
    return Comparison(cfg, search, out_dir, address, resume).run()
