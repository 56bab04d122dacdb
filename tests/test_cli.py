"""The command line: version, help on every flag, `config --explain`, exit codes, Tune's live table."""

import argparse
import dataclasses
import typing

import pytest

from distlmk import __version__
from distlmk.cli import EXIT_BAD_INPUT, build_parser, main
from distlmk.config import AblationConfig, CompareConfig, ExperimentConfig, SearchConfig, explain, from_dict
from distlmk.runner import search


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"distlmk {__version__}"


def _parsers(p: argparse.ArgumentParser):
    yield p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _parsers(sub)


def test_every_flag_has_help_and_shows_defaults():
    for p in _parsers(build_parser()):
        assert p.formatter_class is argparse.ArgumentDefaultsHelpFormatter, p.prog
        for a in p._actions:
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction):
                assert a.help, f"{p.prog} {a.option_strings or a.dest}: no help"
    text = build_parser().parse_args(["search", "--config", "x"])  # parses
    assert text.out == "results" and text.address is None
    help_text = [p for p in _parsers(build_parser()) if p.prog.endswith("search")][0].format_help()
    flat = " ".join(help_text.split())
    assert "(default: results)" in flat and "3 partial failure: search finished with failed trials" in flat


# every kind `distlmk config --explain KIND` offers, and the config class it documents
EXPLAINED = {"search": SearchConfig, "experiment": ExperimentConfig, "ablation": AblationConfig,
             "compare": CompareConfig}


def _config_kinds() -> list[str]:
    config = [p for p in _parsers(build_parser()) if p.prog.endswith(" config")][0]
    return list(next(a for a in config._actions if a.dest == "kind").choices)


def _field_keys(cls: type, prefix: str = "") -> list[str]:
    """Every field of `cls` and of the blocks inside it (nested, in lists or optional), YAML
    spelling, from the dataclasses themselves rather than from `explain`."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + ("lambda" if f.name == "lambda_" else f.name)
        keys.append(key)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += _field_keys(tp, key + ".")
        for inner in typing.get_args(tp):
            if dataclasses.is_dataclass(inner):
                keys += _field_keys(inner, key + ("[]." if typing.get_origin(tp) is list else "."))
    return keys


def test_config_explain_offers_every_config_kind():
    assert sorted(_config_kinds()) == sorted(EXPLAINED), "a config kind the test does not check (or lost)"


@pytest.mark.parametrize("kind", sorted(EXPLAINED))
def test_config_explain_documents_every_field(kind, capsys):
    cls = EXPLAINED[kind]
    rows = explain(cls)
    assert not [r[0] for r in rows if not r[3]], "fields without a doc comment"
    keys = [r[0] for r in rows]
    fields = _field_keys(cls)
    assert sorted(keys) == sorted(fields), (set(fields) - set(keys), set(keys) - set(fields))
    assert main(["config", "--explain", kind]) == 0  # the command prints every one of them, documented
    out = capsys.readouterr().out
    heads = [ln.split() for ln in out.splitlines() if ln and not ln[0].isspace()]
    assert not [h[0] for h in heads if len(h) < 2], "printed without its meaning"
    listed = {h[0].rstrip(":") for h in heads}
    assert listed == set(fields), (set(fields) - listed, listed - set(fields))
    if cls is SearchConfig:
        assert {"simulation.enabled", "faults.inject[].attempts", "experiment.train.lr_floor", "policy.lambda"} <= listed
    if cls is CompareConfig:
        assert {"heldout_draws", "base.seed_varies", "base.variants[].seeds", "bootstrap_reps"} <= listed


def test_config_command_prints_the_listing(capsys):
    assert main(["config", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "faults.inject[].attempts" in out and "type list[int], default [0]" in out


def test_missing_config_exits_with_bad_input(tmp_path, capsys):
    assert main(["search", "--config", str(tmp_path / "nope.yaml")]) == EXIT_BAD_INPUT
    assert "config file not found" in capsys.readouterr().err


def test_live_table_shows_method_variant_seed_epoch_and_val_mre(ray_session, tmp_path, capsys):
    cfg = from_dict(SearchConfig, {
        "name": "table", "simulation": {"enabled": True}, "seeds": [3], "methods": ["fixed", "adaloss"],
        "fixed_sigmas": [2.0], "experiment": {"data": {"num_landmarks": 3}, "train": {"epochs": 3}},
        "resources": {"cpu": 0.5},
    }, "test")
    search(cfg, str(tmp_path), quiet=False)
    out = capsys.readouterr().out
    header = [ln for ln in out.splitlines() if "Trial name" in ln][-1]  # the final table
    for col in ("method", "variant", "seed", "epoch", "val MRE mm"):
        assert col in header, header
    assert "fixed σ=2" in out and "adaloss" in out and "'index'" not in out
    assert "# distlmk population: table" in out  # the report follows
