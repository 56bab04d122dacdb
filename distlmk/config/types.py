"""The typed experiment configuration: every YAML config maps onto these dataclasses.

Each field's comment (or the string right after it) is its documentation (`distlmk config
--explain`, see `distlmk.config.explain`); loading and checking YAML is `distlmk.config.load`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Method = Literal["fixed", "schedule", "learned", "learned_anisotropic", "adaloss", "rl", "landmark_pbt"]  # the sigma controllers


@dataclass
class AugmentConfig:
    """Training-time augmentation (OpenCV affine + intensity)."""

    enabled: bool = True  # augment training images (validation and test never are)
    rotation_deg: float = 8.0  # maximum rotation, degrees
    scale: float = 0.08  # maximum relative scale change
    translate: float = 0.05  # maximum shift, fraction of the image size
    intensity: float = 0.15  # contrast/brightness jitter
    noise: float = 0.02  # additive Gaussian noise (image in [0, 1])


@dataclass
class DataConfig:
    """Which dataset, how it is split and resized."""

    format: Literal["synthetic", "isbi2015", "folder"] = "synthetic"  # dataset layout
    root: str | None = None  # dataset folder (isbi2015, folder); optional cache dir for synthetic
    input_size: tuple[int, int] = (128, 128)  # (H, W) the model sees
    num_landmarks: int = 19  # synthetic: landmarks per image
    num_train: int = 150  # synthetic: training images
    num_val: int = 30  # synthetic: validation images
    num_test: int = 60  # synthetic: test images
    synth_seed: int = 0  # synthetic: generator seed
    synth_size: tuple[int, int] = (320, 256)  # synthetic: (H, W) of generated images
    # synthetic: mm per generated pixel; None keeps a 240 x 192 mm field. With synth_noise_scale it
    # sets how ambiguous landmarks are in heatmap pixels (see tune_configs/synthetic_benchmark.yaml)
    synth_spacing_mm: float | None = None
    synth_noise_scale: float = 1.0  # synthetic: multiplies each landmark's simulated annotation noise (mm)
    # synthetic: how different the landmarks' ambiguities are: each landmark's noise sd becomes
    # g * (sd / g)^spread, g the table's geometric mean (1: the table; 2: squared ratios, precise
    # landmarks more precise and ambiguous ones more ambiguous)
    synth_noise_spread: float = 1.0
    synth_eval_truth: bool = False  # synthetic: val/test labels = exact positions (train labels stay one noisy observer)
    ground_truth: Literal["senior", "junior", "mean"] = "mean"  # isbi2015: which annotator
    val_fraction: float = 0.15  # isbi2015 / folder: share of training images held out for validation
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training augmentation


@dataclass
class ModelConfig:
    """The U-Net."""

    base_channels: int = 16  # channels of the first level (doubled per level)
    depth: int = 4  # encoder levels
    out_stride: int = 2  # heatmaps at input/out_stride; sigma is in heatmap pixels


@dataclass
class RLControlConfig:
    """How a trial talks to the central policy server and its board (the policy's own settings are in
    PolicyConfig); landmark_pbt members use its server_name, timeout_s, board and peer_wait_s too."""

    server_name: str = "distlmk_policy"  # named Ray actor of the central policy (a search appends its name)
    step_factor: float = 1.25  # multiplicative sigma step per lower/raise action
    decision_interval: int = 1  # epochs between decisions
    timeout_s: float = 10.0  # keep current sigmas when the policy is slower than this (board calls: plus peer_wait_s)
    # honour the policy's trial stop / landmark end actions; off by default: the stop has not been
    # shown to save >= 25 % of trial-epochs at <= 1 % MRE cost (issue 15), so it must be asked for
    allow_stop: bool = False
    min_progress_to_stop: float = 0.3  # stop / end actions are honoured only after this progress
    epoch_cost: float = 0.01  # reward cost per epoch spent (trial row)
    reward_scale: float = 10.0  # landmark reward = reward_scale * (change of the log error term, see `reward`)
    # landmark reward: peer = change of log(err_l / peers' median err_l at the same epoch) since the
    # previous decision (the population's common trend cancels; own where no peers); own = change of
    # log err_l; terminal = 0 until the row's last step, then log(first err_l / err_l)
    reward: Literal["peer", "own", "terminal"] = "peer"
    board: str = ""  # the population's board on the policy server (peers = its members); empty: the method name
    # how long the server waits, per decision, for the population's live members to post the same
    # epoch (lockstep populations compare like with like); 0: answer with whoever posted
    peer_wait_s: float = 5.0
    peer_quantile: float = 0.25  # board features: "peers that do best on l" = this top quantile by error on l
    member: int | None = None
    """The member's place in its population, which keys its board draws (ADOPT's donor, landmark_pbt's
    donor and factor) so that a rerun of the same plan draws the same (set by the plan: the trial's
    index; by the simulator: the member). None: keyed by the trial id, which Tune draws anew each run."""


@dataclass
class LandmarkPBTConfig:
    """landmark_pbt: per-landmark exploit/explore of sigma on the population's board (no weights copied).

    Every `interval` epochs a member posts its sigma and validation error per landmark to its
    population's board (on the policy server, `sigma.rl.server_name`, board `sigma.rl.board`,
    waiting up to `sigma.rl.peer_wait_s` for the other members); per landmark, a member in the
    bottom `quantile` of error among the members at that epoch takes the sigma of a random
    member of the top `quantile` times a random factor of `perturb`, clipped to [sigma.min, sigma.max]."""

    interval: int = 2  # epochs between exploit steps
    quantile: float = 0.25  # bottom members (this share, at least one) take a top member's sigma_l
    perturb: list[float] = field(default_factory=lambda: [0.8, 1.25])  # factors drawn at random for a taken sigma_l
    seed: int = 0  # the draws depend on (seed, sigma.rl.member, epoch) only


@dataclass
class SigmaConfig:
    """The heatmap sigma and the controller that sets it."""

    method: Method = "fixed"  # sigma controller
    init: float = 3.0  # heatmap pixels (input pixels / model.out_stride)
    # per-landmark starting sigmas [L] (heatmap pixels); empty: `init` for every landmark. With
    # method fixed this is the per_landmark_static baseline (each landmark's sigma chosen on validation)
    per_landmark: list[float] = field(default_factory=list)
    min: float = 1.0  # lower bound for every controller, heatmap pixels
    max: float = 8.0  # upper bound for every controller, heatmap pixels
    # learned / learned_anisotropic (Payer et al.): learning rate of the trainable sigma (or sigma_x, sigma_y, angle)
    learned_lr: float = 0.05
    learned_reg: float = 0.5  # learned / learned_anisotropic: L2 regulariser weight pulling sigma down
    adaloss_window: int = 3  # adaloss (Teixeira et al. 2019): epochs of loss history per decision
    adaloss_shrink: float = 0.85  # adaloss: sigma factor when the loss variance falls
    schedule_start: float = 4.0  # schedule: coarse-to-fine curriculum starts here (heatmap pixels)
    schedule_end: float = 1.0  # schedule: ... and ends here (heatmap pixels)
    # schedule: the curve between them (step: start for the first half of the epochs, then end)
    schedule_shape: Literal["linear", "cosine", "geometric", "step"] = "cosine"
    rl: RLControlConfig = field(default_factory=RLControlConfig)  # rl: the trial side of the policy
    landmark_pbt: LandmarkPBTConfig = field(default_factory=LandmarkPBTConfig)  # landmark_pbt: the rule's settings


@dataclass
class TrainConfig:
    """Optimisation of one network."""

    epochs: int = 30  # epoch budget per trial
    batch_size: int = 8  # images per step
    lr: float = 2e-3  # AdamW learning rate (PBT mutates it)
    lr_floor: float = 0.05  # the cosine schedule ends at lr * lr_floor
    weight_decay: float = 1e-4  # AdamW weight decay
    loss: Literal["mse", "awing"] = "mse"  # heatmap loss
    seed: int = 0  # torch / augmentation seed (a search sets it per trial)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    amp: bool = True  # mixed precision when on CUDA
    torch_threads: int = 0  # 0: leave torch's default
    checkpoint_every: int = 1  # `distlmk train`: epochs between checkpoints
    # evaluate the test split(s) when the trial ends; off for runs whose results choose something
    # (a sigma grid, policy-training generations): choices use validation, test is read once at the end
    evaluate_test: bool = True


@dataclass
class ExperimentConfig:
    """One training run: data, model, optimisation, sigma."""

    name: str = "distlmk"  # output folder name
    data: DataConfig = field(default_factory=DataConfig)  # the dataset
    model: ModelConfig = field(default_factory=ModelConfig)  # the network
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation
    sigma: SigmaConfig = field(default_factory=SigmaConfig)  # heatmap sigma control


@dataclass
class PolicyConfig:
    """PPO settings of the central policy (one typed place, CleanRL style)."""

    lr: float = 3e-4  # PPO learning rate
    gamma: float = 0.95  # discount per decision
    lambda_: float = 0.95  # GAE lambda (YAML key: lambda)
    clip_param: float = 0.2  # PPO clip
    entropy_coeff: float = 0.01  # entropy bonus
    vf_loss_coeff: float = 0.5  # value-loss weight
    num_epochs: int = 4  # SGD passes per update
    minibatch_size: int = 256  # rows per SGD minibatch
    train_batch_rows: int = 512  # row transitions (landmarks + trial rows) per PPO update
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # MLP layer widths
    end_logit_bias: float = -3.0  # initial bias against "end/stop" so early populations explore
    batch_wait_ms: float = 2.0  # how long the server gathers requests for one forward pass
    seed: int = 0  # policy initialisation and sampling seed
    checkpoint: str | None = None  # start from this saved policy
    freeze: bool = False  # act only, never update (transfer)
    explore: bool = True  # sample actions (False: greedy)
    pretrain_rounds: int = 0  # warm start: PPO rounds on the simulated cost model before serving
    pretrain_trials: int = 32  # simulated trials per warm-start round
    pretrain_landmarks: int = 8  # landmarks per simulated trial (the policy is landmark-count free)
    pretrain_epochs: int = 12  # epoch budget of a simulated trial
    pretrain_batch_rows: int = 1024  # row transitions per PPO update during the warm start
    pretrain_simulator: Literal["cost_model", "network"] = "cost_model"  # the warm start's simulator (distlmk.sim)


@dataclass
class ResourcesConfig:
    """Resources of one Tune trial process."""

    cpu: float = 1.0  # CPUs per trial (also torch threads, at least 1)
    gpu: float = 0.0  # fraction of a GPU per trial, used only when the cluster has GPUs


@dataclass
class SchedulerConfig:
    """Tune trial scheduler."""

    # none: every trial runs its full budget; pbt: population based training (random explore);
    # pb2: PBT whose explore step is a GP bandit within the same ranges (Parker-Holder et al. 2020)
    name: Literal["none", "asha", "pbt", "pb2"] = "none"
    grace_period: int = 3  # asha: epochs before a trial may be cut
    reduction_factor: int = 2  # asha: keep 1/reduction_factor per rung
    perturbation_interval: int = 4  # pbt, pb2: epochs between exploit/explore steps
    pbt_synch: bool = True
    """pbt, pb2: synchronous PBT (Jaderberg et al. 2017, A.1): rank the population only when every live
    trial reached the same epoch. Asynchronous PBT ranks a trial against the others' older scores,
    so trials that take turns on the cluster, or report in lockstep, are rarely exploited."""
    # pbt, pb2 mutate train.lr, or sigma (a global scale and one factor per landmark of the data)
    pbt_mutate: Literal["lr", "sigma"] = "lr"
    lr_range: tuple[float, float] = (5e-4, 5e-3)  # pbt, pb2 mutate train.lr in this range
    sigma_scale_range: tuple[float, float] = (0.5, 2.0)  # pbt, pb2 sigma: global factor on sigma.init (or per_landmark)
    sigma_factor_range: tuple[float, float] = (0.7, 1.4)  # pbt, pb2 sigma: per-landmark factor
    seed: int = 0
    """pbt, pb2: seeds the driver's draws (the first sample of the space, and the explore steps, which Tune
    draws from Python's and NumPy's global generators), so a rerun that sees the same results explores
    the same. The order in which results arrive can still differ between runs; a resumed search is not
    seeded again."""


@dataclass
class FaultConfig:
    """One injected fault, for the fault tests and chaos drills."""

    kind: Literal["raise", "kill", "nan"] = "raise"
    """raise: the trial raises after reporting `epoch`; kill: its worker process SIGKILLs itself
    there; nan: its loss (or simulated error) turns NaN during `epoch`."""
    epoch: int = 2  # the epoch (1-based) at which the fault fires
    trials: list[int] = field(default_factory=list)  # indices in the trial grid; empty = every trial
    attempts: list[int] = field(default_factory=lambda: [0])
    """attempts it fires on: 0 = the first start, 1 = after the first restore from a checkpoint
    (retry, PBT exploit or --resume), ...; empty = every attempt."""


@dataclass
class FaultsConfig:
    """Fault injection (tests, chaos drills); empty in production configs."""

    inject: list[FaultConfig] = field(default_factory=list)  # the faults to inject


@dataclass
class SimulationConfig:
    """The cost-model trainer in place of a network (scaling studies, policy and fault tests)."""

    enabled: bool = False  # train the per-landmark cost model instead of a U-Net
    epoch_seconds: float = 0.0  # sleep per simulated epoch, standing in for compute
    pack: int = 1  # simulated trials per Tune trial process (1,024 clients on one machine)
    model: Literal["cost_model", "network"] = "cost_model"  # distlmk.sim.SIMULATORS: which simulator


@dataclass
class RLControlOverrides:
    """A variant's overrides of sigma.rl: a key left out (null) keeps experiment.sigma.rl's value."""

    server_name: str | None = None  # overrides sigma.rl.server_name
    step_factor: float | None = None  # overrides sigma.rl.step_factor
    decision_interval: int | None = None  # overrides sigma.rl.decision_interval
    timeout_s: float | None = None  # overrides sigma.rl.timeout_s
    allow_stop: bool | None = None  # overrides sigma.rl.allow_stop
    min_progress_to_stop: float | None = None  # overrides sigma.rl.min_progress_to_stop
    epoch_cost: float | None = None  # overrides sigma.rl.epoch_cost
    reward_scale: float | None = None  # overrides sigma.rl.reward_scale
    reward: Literal["peer", "own", "terminal"] | None = None  # overrides sigma.rl.reward
    board: str | None = None  # overrides sigma.rl.board
    peer_wait_s: float | None = None  # overrides sigma.rl.peer_wait_s
    peer_quantile: float | None = None  # overrides sigma.rl.peer_quantile

    def apply_to(self, base: RLControlConfig) -> RLControlConfig:
        return _overridden(base, self)


@dataclass
class LandmarkPBTOverrides:
    """A variant's overrides of sigma.landmark_pbt: a key left out (null) keeps the experiment's value."""

    interval: int | None = None  # overrides sigma.landmark_pbt.interval
    quantile: float | None = None  # overrides sigma.landmark_pbt.quantile
    perturb: list[float] | None = None  # overrides sigma.landmark_pbt.perturb
    seed: int | None = None  # overrides sigma.landmark_pbt.seed

    def apply_to(self, base: LandmarkPBTConfig) -> LandmarkPBTConfig:
        return _overridden(base, self)


@dataclass
class SigmaOverrides:
    """A variant's overrides of experiment.sigma (its method is the variant's own `method`):
    a key left out (null) keeps the experiment's value; an unknown key is an error."""

    init: float | None = None  # overrides sigma.init
    per_landmark: list[float] | None = None  # overrides sigma.per_landmark (one value per landmark)
    min: float | None = None  # overrides sigma.min
    max: float | None = None  # overrides sigma.max
    learned_lr: float | None = None  # overrides sigma.learned_lr
    learned_reg: float | None = None  # overrides sigma.learned_reg
    adaloss_window: int | None = None  # overrides sigma.adaloss_window
    adaloss_shrink: float | None = None  # overrides sigma.adaloss_shrink
    schedule_start: float | None = None  # overrides sigma.schedule_start
    schedule_end: float | None = None  # overrides sigma.schedule_end
    schedule_shape: Literal["linear", "cosine", "geometric", "step"] | None = None  # overrides sigma.schedule_shape
    rl: RLControlOverrides = field(default_factory=RLControlOverrides)  # overrides of sigma.rl
    landmark_pbt: LandmarkPBTOverrides = field(default_factory=LandmarkPBTOverrides)  # overrides of sigma.landmark_pbt

    def apply_to(self, base: SigmaConfig) -> SigmaConfig:
        """`base` with these overrides (a new SigmaConfig; `base` is left as it is)."""
        out = _overridden(base, self, skip=("rl", "landmark_pbt"))
        out.rl = self.rl.apply_to(base.rl)
        out.landmark_pbt = self.landmark_pbt.apply_to(base.landmark_pbt)
        return out


def _overridden(base: Any, over: Any, skip: tuple[str, ...] = ()) -> Any:
    """A copy of `base` with every field of `over` that is not None (fields named alike)."""
    changes = {f.name: copy.deepcopy(getattr(over, f.name)) for f in dataclasses.fields(over)
               if f.name not in skip and getattr(over, f.name) is not None}
    return dataclasses.replace(copy.deepcopy(base), **changes)


@dataclass
class VariantConfig:
    """A named method setting run for every seed, beside the `methods` grid (e.g. the
    per_landmark_static baseline: method fixed with sigma.per_landmark set)."""

    name: str = "variant"  # its label in records and reports
    method: Method = "fixed"  # its sigma controller
    sigma: SigmaOverrides = field(default_factory=SigmaOverrides)  # overrides of experiment.sigma for this variant
    replicas: int = 1  # trials per seed (rl: several clients of the one policy)
    seeds: list[int] | None = None  # run on these of the search's seeds only (None: every seed)


@dataclass
class SearchConfig:
    """`distlmk search`: a population of trials on Ray Tune with the central policy."""

    name: str = "population"  # experiment folder name under --out
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)  # shared by every trial
    methods: list[Method] = field(
        default_factory=lambda: ["fixed", "learned", "adaloss", "rl"]
    )  # sigma methods compared (same seeds and budget each)
    variants: list[VariantConfig] = field(default_factory=list)  # named settings run beside `methods`
    fixed_sigmas: list[float] = field(default_factory=lambda: [1.5, 3.0])  # fixed: one trial per sigma
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # one trial per method variant and seed
    # what a trial's seed varies: the network's initialisation and batches, the synthetic data draw
    # (data.synth_seed = seed: new images, new splits), or both (an unseen draw with its own network)
    seed_varies: Literal["network", "data", "both"] = "network"
    rl_trials_per_seed: int = 1  # rl trials (replicas) per seed
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)  # per trial
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # none | asha | pbt
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the central PPO policy
    max_concurrent: int = 0  # 0: as many as resources allow
    max_failures: int = 2  # retries per trial, each from its last checkpoint
    keep_checkpoints: int = 4  # per trial; 0 keeps all (PBT always keeps all)
    experiment_snapshot_s: float = 1.0
    """seconds between Tune experiment-state snapshots (TUNE_GLOBAL_CHECKPOINT_S; Tune's default is
    >= 10 s, and a driver killed in between resumes from checkpoints num_to_keep already deleted)."""
    progress_every_s: float = 30.0  # seconds between Tune's live progress tables (verbose runs)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)  # cost-model trials
    faults: FaultsConfig = field(default_factory=FaultsConfig)  # fault injection (tests, drills)

    def all_methods(self) -> set[str]:
        """Every sigma method the search runs: `methods` and the variants' methods."""
        return set(self.methods) | {v.method for v in self.variants}


@dataclass
class CompareConfig:
    """`distlmk compare`: the honest arena. (a) generations of cold-started rl populations on the
    training draws train the central policy; (b) on every held-out draw (new images, its own
    splits) a sigma grid chooses best fixed and per-landmark sigma on that draw's validation split,
    and every method runs at N members x epochs where it is a population, with the policy frozen;
    (c) the test split is read once, at the end, for paired deltas with two intervals."""

    name: str = "benchmark"  # output folder name
    base: SearchConfig = field(default_factory=SearchConfig)  # experiment, resources, policy of every stage
    grid_sigmas: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.5, 4.0, 6.0])  # fixed-sigma grid
    train_draws: list[int] = field(default_factory=lambda: [0, 1])  # data draws the policy trains on
    heldout_draws: list[int] = field(default_factory=lambda: [100, 101, 102])  # unseen draws: evaluation only
    population_size: int = 4  # N: members of every population method per draw (random, pbt, pb2, ...)
    generations: int = 2  # waves of cold rl populations on the training draws before the policy is frozen
    generation_size: int = 0  # members of each generation's rl population (0: population_size); more members, more real transitions
    perturbation_interval: int = 4  # epochs between PBT/PB2 exploits and landmark_pbt copies
    baselines: list[Literal["learned", "learned_anisotropic", "adaloss", "random", "pbt", "pb2", "landmark_pbt"]] = (
        field(default_factory=lambda: ["learned", "learned_anisotropic", "adaloss", "random", "pbt", "pb2",
                                       "landmark_pbt"]))  # methods beside best fixed, per-landmark static and rl
    bootstrap_reps: int = 2000  # resamples for the 95 % bootstrap intervals


@dataclass
class AblationConfig:
    """Scaling ablation: the same simulated population at several sizes and resources per trial."""

    name: str = "ablation"  # output folder name
    base: SearchConfig = field(
        default_factory=lambda: SearchConfig(simulation=SimulationConfig(enabled=True), methods=["rl"])
    )  # the population every size and resource setting starts from
    population_sizes: list[int] = field(default_factory=lambda: [16, 64, 256])  # simulated trials per run
    cpu_per_trial: list[float] = field(default_factory=lambda: [0.1])  # per Tune trial process
    max_trial_processes: int = 16  # simulated trials are packed so at most this many processes run
    target_mre_mm: float = 3.0  # "time to target": first time any trial's validation MRE reaches it
