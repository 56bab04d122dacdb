"""The `distlmk` command line: train, data synth/check, search, analyze, predict, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distlmk import __version__, rundir
from distlmk.config import ConfigError, DataConfig, ExperimentConfig, SearchConfig, load_yaml
from distlmk.data.dataset import DataError


def _cmd_train(args: argparse.Namespace) -> int:
    from distlmk.train.fit import fit

    cfg = load_yaml(args.config, ExperimentConfig)
    fit(cfg, args.out or Path("results") / cfg.name, resume=args.resume)
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from distlmk.data.folder import write_folder
    from distlmk.data.synthetic import synthetic_dataset

    if args.config:  # exactly the set a training config uses (sizes, seed, spacing, noise, labels)
        from distlmk.data import load_dataset

        cfg = load_yaml(args.config, ExperimentConfig).data
        if cfg.format != "synthetic":
            raise ConfigError(f"{args.config}: data.format is {cfg.format!r}; --config needs a synthetic config")
        ds = load_dataset(cfg)
    else:
        ds = synthetic_dataset(
            args.train, args.val, args.test, args.landmarks, args.seed, tuple(args.size)
        )
    out = write_folder(ds, args.out, args.split)
    n = sum(len(ds.splits[s]) for s in set(args.split)) if args.split else len(ds.images)
    print(
        f"wrote {n} images with {ds.num_landmarks} landmarks to {out} (folder format)"
    )
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from distlmk.data.check import format_summary, summarize_dataset
    from distlmk.data.load import load_dataset

    cfg = DataConfig(format=args.format, root=args.root, ground_truth=args.ground_truth)
    summary = summarize_dataset(load_dataset(cfg))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    cfg = load_yaml(args.config, SearchConfig)
    from distlmk.policy.ship import SHIPPED, resolve_checkpoint, starts_from_shipped

    if args.policy_checkpoint and args.fresh_policy:
        raise ConfigError("--fresh-policy and --policy-checkpoint exclude each other: give one")
    if not args.policy_checkpoint and not args.fresh_policy and starts_from_shipped(cfg):
        args.policy_checkpoint = SHIPPED
        if not args.quiet:
            print("[search] rl starts from the shipped policy (distlmk.policy.ship; --fresh-policy: random weights)")
    if args.policy_checkpoint:
        cfg.policy.checkpoint = str(Path(resolve_checkpoint(args.policy_checkpoint)).resolve())
    if args.freeze_policy:
        if not cfg.policy.checkpoint:
            raise ConfigError(
                "--freeze-policy needs a policy to freeze: --policy-checkpoint, policy.checkpoint in the "
                "config, or the shipped one (not with --fresh-policy or a warm start)"
            )
        cfg.policy.freeze = True
        cfg.policy.explore = False  # a frozen policy acts greedily
    from distlmk.runner import search

    outcome = search(cfg, out_dir=args.out, address=args.address, resume=args.resume, quiet=args.quiet)
    if outcome.num_errors:
        print(f"error: {outcome.num_errors} of {outcome.num_trials} trials ended in error "
              f"(see {outcome.exp_dir / rundir.REPORT_FILE})", file=sys.stderr)
        return EXIT_TRIALS_FAILED
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from distlmk.compare import run_compare
    from distlmk.config import CompareConfig

    cfg = load_yaml(args.config, CompareConfig)
    from distlmk.policy.ship import resolve_checkpoint

    policy = str(Path(resolve_checkpoint(args.policy_checkpoint)).resolve()) if args.policy_checkpoint else None
    report = run_compare(cfg, out_dir=args.out, address=args.address, resume=args.resume, policy_checkpoint=policy)
    print(report.read_text())
    print(f"wrote {report} and {report.with_name(rundir.COMPARISON_JSON)}")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from distlmk.analysis.scaling import measure_run, write_scaling
    from distlmk.config import AblationConfig
    from distlmk.population.ablation import run_ablation

    cfg = load_yaml(args.config, AblationConfig)
    root = Path(args.out).resolve() / cfg.name
    rows = []
    for labels, exp in run_ablation(cfg, out_dir=args.out, address=args.address):
        row = {**labels, **measure_run(exp, cfg.target_mre_mm)}
        rows.append(row)
        print(f"[ablation] {row['trials']} trials ({row['processes']} processes x {row['pack']}), "
              f"cpu {row['cpu_per_process']}: {row['trial_epochs_per_hour']:.0f} trial-epochs/h, "
              f"policy {row['policy_requests_per_s']:.0f} req/s, p99 {row['policy_p99_ms']:.1f} ms, "
              f"time to target {row['time_to_target_s']:.1f} s")
    table = write_scaling(root, rows)
    print(table.to_string(index=False))
    print(f"wrote {root / 'scaling.md'} and {root / 'scaling.png'}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from distlmk.config import AblationConfig, CompareConfig, format_explain

    cls = {"search": SearchConfig, "experiment": ExperimentConfig, "ablation": AblationConfig,
           "compare": CompareConfig}[args.kind]
    print(format_explain(cls))
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from distlmk.analysis.report import analyze

    out = analyze(args.experiment_dir)
    print(f"wrote {out}")
    return 0


EXIT_BAD_INPUT = 2  # bad config, data or path: nothing was run
EXIT_TRIALS_FAILED = 3  # `search` finished, report written, but at least one trial ended in error

EPILOG = (
    "exit status: 0 ok; 2 bad config, data or path (nothing run); 3 partial failure: search finished "
    "with failed trials (report still written), or predict could not read some images"
)


# --- using a model: predict, export (issue 11) ---------------------------------------------
EXIT_SOME_IMAGES_FAILED = 3  # predict: the others were predicted; see OUT/failed.csv


def _cmd_predict(args: argparse.Namespace) -> int:
    from distlmk.predict import format_result, predict_images

    res = predict_images(
        args.model, args.images, args.out, args.device, args.overlays, args.spacing_mm, args.truth,
        args.batch_size,
    )
    print(format_result(res))
    return EXIT_SOME_IMAGES_FAILED if res.failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from distlmk.export import export_best

    info = export_best(args.experiment_dir, args.out, by=args.by)
    test = "no test metrics" if info["test_mre_mm"] is None else f"{info['test_split']} MRE {info['test_mre_mm']:.3f} mm"
    print(
        f"exported trial {info['trial_id']} ({info['variant']}, seed {info['seed']}; val MRE "
        f"{info['val_mre_mm']:.3f} mm, {test}) -> {args.out}"
    )
    return 0


def _add_use_commands(sub) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    pr = sub.add_parser(
        "predict", formatter_class=fmt,
        help="landmarks on new images (PNG/JPEG/BMP/TIFF/DICOM) with a trained or exported model",
        description="Writes OUT/predictions.csv (image,landmark,name,x,y,x_mm,y_mm,confidence; pixels of the "
        "original image) and OUT/overlays/*.png. Exit code 0: all images predicted; "
        f"{EXIT_SOME_IMAGES_FAILED}: some images could not be read (listed, the others predicted); "
        "2: nothing predicted (no images, unreadable model).",
    )
    pr.add_argument("--model", required=True,
                    help=f"a `distlmk train` output folder, a trial checkpoint (folder or {rundir.CHECKPOINT_FILE}) or an export folder")
    pr.add_argument("--images", required=True, nargs="+", help="image files and/or folders of images")
    pr.add_argument("--out", default="predictions", help="output folder")
    pr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when available")
    pr.add_argument("--overlays", action=argparse.BooleanOptionalAction, default=True,
                    help="write an overlay PNG per image")
    pr.add_argument("--spacing-mm", type=float, help="mm per pixel for images whose file has none (not DICOM)")
    pr.add_argument("--truth", help="a landmarks.csv (image,landmark,x,y): also report the error against it")
    pr.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser("export", formatter_class=fmt, help="export the best trial of a search (chosen on validation) for predict")
    ex.add_argument("experiment_dir", help="a `distlmk search` experiment folder, e.g. results/<name>")
    ex.add_argument("--by", default="val", choices=["val"],
                    help="selection split: the final validation MRE (never the test set)")
    ex.add_argument("--out", required=True, help="model folder to write (model.pt, model.json, export.json)")
    ex.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="distlmk", description=__doc__, epilog=EPILOG, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"distlmk {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(parent, name: str, help: str) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help, description=help, epilog=EPILOG, formatter_class=fmt)

    t = command(sub, "train", "one training run without Ray; writes metrics.json")
    t.add_argument("--config", required=True, help="experiment YAML (see `distlmk config --explain experiment`)")
    t.add_argument("--out", help="output folder; none: results/<name>")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.set_defaults(func=_cmd_train)

    d = command(sub, "data", "synthetic data and dataset checks")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = command(dsub, "synth", "write the synthetic set in the generic folder format")
    s.add_argument("--out", required=True, help="folder to write images/ and landmarks.csv into")
    s.add_argument("--config", help="take the set from this training config's data block (other sizes ignored)")
    s.add_argument("--train", type=int, default=150, help="training images")
    s.add_argument("--val", type=int, default=30, help="validation images")
    s.add_argument("--test", type=int, default=60, help="test images")
    s.add_argument("--landmarks", type=int, default=19, help="landmarks per image")
    s.add_argument("--seed", type=int, default=0, help="generator seed")
    s.add_argument("--size", type=int, nargs=2, default=[320, 256], metavar=("H", "W"), help="image size")
    s.add_argument("--split", nargs="+", help="write only these splits (e.g. test: the images a model was not trained on)")
    s.set_defaults(func=_cmd_data_synth)
    c = command(dsub, "check", "validate a dataset and print a summary")
    c.add_argument("--format", required=True, choices=["synthetic", "isbi2015", "folder"], help="dataset layout")
    c.add_argument("--root", help="dataset folder (cache folder for synthetic)")
    c.add_argument("--ground-truth", default="mean", choices=["senior", "junior", "mean"],
                   help="isbi2015: which annotator's points")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=_cmd_data_check)

    r = command(sub, "search", "population search on Ray Tune with the central RL policy")
    r.add_argument("--config", required=True, help="search YAML (see `distlmk config --explain`)")
    r.add_argument("--out", default="results", help="storage folder or URI")
    r.add_argument("--address", help="join this Ray cluster (auto, host:port, ray://...); "
                   "without it: a private local Ray on 127.0.0.1, whatever RAY_ADDRESS says")
    r.add_argument("--resume", action="store_true", help="continue an interrupted experiment (Tuner.restore)")
    r.add_argument("--policy-checkpoint", help="start the central policy from this saved policy (DIR/policy/final, or "
                   "`shipped`: the policy that ships with distlmk, see distlmk.policy.ship). Default: the "
                   "shipped one when the config names no checkpoint and no warm start")
    r.add_argument("--fresh-policy", action="store_true", help="start the central policy from random weights, "
                   "not the shipped one")
    r.add_argument("--freeze-policy", action="store_true", help="act with the policy, never update it")
    r.add_argument("--quiet", action="store_true", help="no live trial table and no report on stdout")
    r.set_defaults(func=_cmd_search)

    cp = command(sub, "compare", "the honest arena: policy generations on training draws, then every method on "
                 "unseen held-out draws with the frozen policy; writes " + rundir.COMPARISON_JSON)
    cp.add_argument("--config", required=True, help="a compare config, e.g. tune_configs/synthetic_benchmark.yaml")
    cp.add_argument("--out", default="results", help="output folder; results go to OUT/<name>/")
    cp.add_argument("--address", help="Ray cluster address (auto, host:port, ray://...); without it: a private local Ray")
    cp.add_argument("--resume", action="store_true", help="reuse the stages an interrupted compare finished")
    cp.add_argument("--policy-checkpoint", help="evaluate this saved policy (DIR/policy/final, or `shipped`: the "
                    "policy that ships with distlmk): no generations")
    cp.set_defaults(func=_cmd_compare)

    ab = command(sub, "ablate", "scaling ablation: simulated populations of several sizes")
    ab.add_argument("--config", required=True, help="ablation YAML (see `distlmk config --explain ablation`)")
    ab.add_argument("--out", default="results", help="output folder")
    ab.add_argument("--address", help="Ray cluster address; without it: a private local Ray")
    ab.set_defaults(func=_cmd_ablate)

    a = command(sub, "analyze", "plots and a Markdown report for an experiment folder")
    a.add_argument("experiment_dir", help="a search (or ablation) experiment folder, running or finished")
    a.set_defaults(func=_cmd_analyze)

    cf = command(sub, "config", "list every config field with its type, default and meaning")
    cf.add_argument("--explain", action="store_true", help="(the default and only action) explain the fields")
    cf.add_argument("kind", nargs="?", default="search", choices=["search", "experiment", "ablation", "compare"],
                    help="which config file kind")
    cf.set_defaults(func=_cmd_config)
    _add_use_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
