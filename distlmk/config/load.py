"""Loading YAML into the config dataclasses, strictly: an unknown key or a wrong type is a
`ConfigError` such as ``tune_configs/x.yaml: train.epochs: expected int, got 'ten'``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from distlmk.config.types import SearchConfig


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file, the key and the fix."""



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


# --- cross-field rules ------------------------------------------------------------------------

PBT_SCHEDULERS = ("pbt", "pb2")  # schedulers that copy checkpoints and configs between trials


def validate_search(cfg: SearchConfig) -> None:
    """What a search config must satisfy beyond its types, in one place (the rules that need the
    loaded data, e.g. one sigma per landmark, are checked when the trials are planned)."""
    if not (cfg.methods or cfg.variants) or not cfg.seeds:
        raise ConfigError("methods (or variants) and seeds must not be empty")
    name = cfg.scheduler.name
    if name in PBT_SCHEDULERS and len(cfg.all_methods()) > 1:
        raise ConfigError(
            f"scheduler.name: {name} copies checkpoints and configs between trials, which would mix methods; "
            f"use {name} with a single method, or asha/none to compare methods"
        )
    if "fixed" in cfg.methods and not cfg.fixed_sigmas:
        raise ConfigError("fixed_sigmas: give at least one sigma for the fixed method")
    for i, v in enumerate(cfg.variants):
        if v.seeds is not None and not set(v.seeds) <= set(cfg.seeds):
            raise ConfigError(f"variants[{i}].seeds: {v.seeds} are not all among seeds {cfg.seeds}")
    if cfg.seed_varies != "network" and cfg.experiment.data.format != "synthetic":
        raise ConfigError(f"seed_varies: {cfg.seed_varies!r} draws new data per seed, which only the synthetic "
                          f"format can do (data.format is {cfg.experiment.data.format!r}); use seed_varies: network")
