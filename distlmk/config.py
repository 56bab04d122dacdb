"""Typed experiment configuration, loaded from YAML with errors that name the key and file.

Every YAML config maps onto these dataclasses; an unknown key or a wrong type is a
`ConfigError` such as ``tune_configs/x.yaml: train.epochs: expected int, got 'ten'``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Method = Literal["fixed", "schedule", "learned", "learned_anisotropic", "adaloss", "rl", "landmark_pbt"]  # the sigma controllers


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file, the key and the fix."""


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
    allow_stop: bool = True  # honour the policy's trial stop / landmark end actions
    min_progress_to_stop: float = 0.3  # stop / end actions are honoured only after this progress
    epoch_cost: float = 0.01  # reward cost per epoch spent (trial row)
    reward_scale: float = 10.0  # landmark reward = reward_scale * (change of the log error term, see `reward`)
    # not an input any more (a sigma grid is a baseline, not context: the observation reads the
    # population's board instead); accepted and ignored so older configs still load
    reference: list[float] = field(default_factory=list)
    # landmark reward: peer = change of log(err_l / peers' median err_l at the same epoch) since the
    # previous decision (the population's common trend cancels; own where no peers); own = change of
    # log err_l; terminal = 0 until the row's last step, then log(first err_l / err_l)
    reward: Literal["peer", "own", "terminal"] = "peer"
    board: str = ""  # the population's board on the policy server (peers = its members); empty: the method name
    # how long the server waits, per decision, for the population's live members to post the same
    # epoch (lockstep populations compare like with like); 0: answer with whoever posted
    peer_wait_s: float = 5.0
    peer_quantile: float = 0.25  # board features: "peers that do best on l" = this top quantile by error on l


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
    seed: int = 0  # the draws depend on (trial id, epoch, seed) only


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
    schedule_shape: Literal["linear", "cosine", "geometric"] = "cosine"  # schedule: the curve between them
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


@dataclass
class ResourcesConfig:
    """Resources of one Tune trial process."""

    cpu: float = 1.0  # CPUs per trial (also torch threads, at least 1)
    gpu: float = 0.0  # fraction of a GPU per trial, used only when the cluster has GPUs


@dataclass
class SchedulerConfig:
    """Tune trial scheduler."""

    name: Literal["none", "asha", "pbt"] = "none"  # none: every trial runs its full budget
    grace_period: int = 3  # asha: epochs before a trial may be cut
    reduction_factor: int = 2  # asha: keep 1/reduction_factor per rung
    perturbation_interval: int = 4  # pbt: epochs between exploit/explore steps
    pbt_synch: bool = True
    """pbt: synchronous PBT (Jaderberg et al. 2017, A.1): rank the population only when every live
    trial reached the same epoch. Asynchronous PBT ranks a trial against the others' older scores,
    so trials that take turns on the cluster, or report in lockstep, are rarely exploited."""
    pbt_mutate: Literal["lr", "sigma"] = "lr"  # pbt mutates train.lr, or sigma (a global scale and per-landmark factors)
    lr_range: tuple[float, float] = (5e-4, 5e-3)  # pbt mutates train.lr in this range
    sigma_scale_range: tuple[float, float] = (0.5, 2.0)  # pbt sigma: global factor on sigma.init
    sigma_factor_range: tuple[float, float] = (0.7, 1.4)  # pbt sigma: per-landmark factor


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


@dataclass
class VariantConfig:
    """A named method setting run for every seed, beside the `methods` grid (e.g. the
    per_landmark_static baseline: method fixed with sigma.per_landmark set)."""

    name: str = "variant"  # its label in records and reports
    method: Method = "fixed"  # its sigma controller
    sigma: dict[str, Any] = field(default_factory=dict)  # overrides of experiment.sigma for this variant
    replicas: int = 1  # trials per seed (rl: several clients of the one policy)


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


@dataclass
class ScheduleSpec:
    """One coarse-to-fine candidate of the schedule baseline (heatmap pixels)."""

    start: float = 4.0  # sigma at the first epoch
    end: float = 1.0  # sigma at the last epoch
    shape: Literal["linear", "cosine", "geometric"] = "cosine"  # the curve between them


@dataclass
class CompareConfig:
    """`distlmk compare`: the honest comparison. (a) a sigma grid and schedules on the training
    seeds choose best fixed sigma, per-landmark sigma and schedule on validation; (b) waves of
    rl trials on the training seeds train the central policy, generation after generation;
    (c) every method runs on held-out seeds with the policy frozen, and the test split is read
    once, at the end, for paired deltas with bootstrap CIs."""

    name: str = "benchmark"  # output folder name
    base: SearchConfig = field(default_factory=SearchConfig)  # experiment, resources, policy of every stage
    grid_sigmas: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.5, 4.0, 6.0])  # fixed-sigma grid
    schedules: list[ScheduleSpec] = field(default_factory=lambda: [ScheduleSpec()])  # schedule candidates
    train_seeds: list[int] = field(default_factory=lambda: [0, 1])  # grid and policy training
    heldout_seeds: list[int] = field(default_factory=lambda: [100, 101, 102])  # final evaluation only
    generations: int = 3  # waves of rl trials that train the policy before it is frozen
    rl_replicas: int = 2  # rl trials per training seed and generation
    # where rl trials start: each landmark at its per-landmark (grid) sigma, or all at the best fixed sigma
    rl_start: Literal["reference", "best_fixed"] = "reference"
    cold_start_ablation: bool = True  # also train a policy without the simulator warm start
    pbt_population: int = 4  # PBT members per held-out seed (sigma scale + per-landmark factors)
    pbt_perturbation_interval: int = 4  # epochs between PBT exploits
    baselines: list[Literal["learned", "learned_anisotropic", "adaloss", "pbt"]] = field(
        default_factory=lambda: ["learned", "adaloss", "pbt"])  # other methods evaluated on the held-out seeds
    rl_stop_variant: bool = True  # also evaluate the frozen policy with its stop action allowed
    bootstrap_reps: int = 2000  # resamples for the 95 % CIs


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one YAML value against a type annotation; raise with `where` on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        inner = args[0] if args else Any
        out = [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


# keys that moved into their own blocks: a config that still uses them is told where they went
_MOVED = {
    "simulated": "simulation.enabled",
    "simulated_epoch_seconds": "simulation.epoch_seconds",
    "simulated_pack": "simulation.pack",
}


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        attr = "lambda_" if key == "lambda" else key
        path = f"{where}.{key}" if where else str(key)
        if cls is SearchConfig and key in _MOVED:
            raise ConfigError(f"{path}: moved; write it as {_MOVED[key]}")
        if cls is SearchConfig and key == "faults" and isinstance(value, list):
            raise ConfigError(f"{path}: moved; write the list as faults.inject")
        if attr not in names:
            allowed = ", ".join(sorted(n.rstrip("_") for n in names))
            raise ConfigError(f"{path}: unknown key (allowed here: {allowed})")
        kwargs[attr] = _convert(value, hints[attr], path)
    return cls(**kwargs)


def from_dict(cls: type, data: dict | None, source: str = "<config>") -> Any:
    """Build dataclass `cls` from a plain dict; errors are prefixed by `source`."""
    try:
        return _build(cls, data or {}, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_yaml(path: str | Path, cls: type) -> Any:
    """Load a YAML file into dataclass `cls`, naming the file and key on any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return from_dict(cls, data, str(path))


def to_dict(cfg: Any) -> dict:
    """Plain-dict view of a config (for Tune param spaces and saved metadata)."""
    return dataclasses.asdict(cfg)


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


# --- `distlmk config --explain` ----------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """Each field's documentation, read from the class source: the string literal right after
    the field (CleanRL / tyro style) or else the comment on the field's line(s)."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    src = textwrap.dedent(inspect.getsource(cls))
    src_lines = src.splitlines()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(src).body[0].body
    docs = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) \
                and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
            continue
        lines = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        n = node.lineno - 1  # else: the comment lines right above the field
        while not lines and n in comments and src_lines[n - 1].lstrip().startswith("#"):
            n -= 1
        if not lines:
            lines = [comments[k] for k in range(n + 1, node.lineno)]
        if lines:
            docs[node.target.id] = " ".join(lines)
    return docs


def explain(cls: type = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field of `cls` and its nested blocks, YAML spelling."""
    cls = cls or SearchConfig
    rows = []
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        key = prefix + ("lambda" if f.name == "lambda_" else f.name)
        tp = hints[f.name]
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(tp):
            rows.append((key, "block", "", docs.get(f.name, "")))
            rows += explain(tp, key + ".")
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):  # a list of blocks (a block field went above)
            value = [to_dict(v) for v in value]
        rows.append((key, _type_label(tp), json_default(value), docs.get(f.name, "")))
        inner = typing.get_args(tp)
        if typing.get_origin(tp) is list and inner and dataclasses.is_dataclass(inner[0]):
            rows += explain(inner[0], key + "[].")
    return rows


def _type_label(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def json_default(value: Any) -> str:
    import json

    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)


def format_explain(cls: type = None) -> str:
    rows = explain(cls)
    width = max(len(r[0]) for r in rows)
    out = []
    for key, tp, default, doc in rows:
        if tp == "block":
            out.append(f"{key + ':':<{width + 1}}  {doc}")
        else:
            out.append(f"{key:<{width + 1}}  {doc}\n{'':<{width + 1}}  type {tp}, default {default}")
    return "\n".join(out)
