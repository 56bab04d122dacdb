import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from distlmk.config import (
    AblationConfig,
    CompareConfig,
    ConfigError,
    ExperimentConfig,
    SearchConfig,
    SigmaConfig,
    from_dict,
    load_yaml,
)

ROOT = Path(__file__).resolve().parents[1]


SHIPPED = sorted((ROOT / "tune_configs").glob("*.yaml"))


def _config_class(raw: dict) -> type:
    keys = set(raw)
    return (AblationConfig if "population_sizes" in keys else CompareConfig if "heldout_draws" in keys or "base" in keys
            else SearchConfig if "methods" in keys or "variants" in keys else ExperimentConfig)


def _block_fields(cls: type) -> dict[str, type | None]:
    """YAML key -> the block class behind it (None for a plain value) of config class `cls`."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        out["lambda" if f.name == "lambda_" else f.name] = tp if dataclasses.is_dataclass(tp) else None
    return out


def _unknown_keys(raw: dict, cls: type, where: str) -> list[str]:
    """Keys of the raw mapping `raw` that are not fields of `cls` (or of its nested blocks)."""
    fields = _block_fields(cls)
    bad = []
    for key, value in raw.items():
        if key not in fields:
            bad.append(f"{where}.{key}")
        elif fields[key] is not None and isinstance(value, dict):
            bad += _unknown_keys(value, fields[key], f"{where}.{key}")
    return bad


def variant_sigma_problems(raw, where: str = "") -> list[str]:
    """Walk a raw YAML document: every `variants[].sigma` mapping, wherever it is (a search's
    variants, a compare's or ablation's base.variants), must use only SigmaConfig's keys, nested
    blocks included (sigma.rl.*), and values SigmaConfig accepts. Independent of how
    VariantConfig types its `sigma` field (a free mapping or SigmaConfig)."""
    problems = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "variants" and isinstance(value, list):
                for i, v in enumerate(value):
                    sigma = v.get("sigma") if isinstance(v, dict) else None
                    if sigma is None:
                        continue
                    here = f"{path}[{i}].sigma"
                    if not isinstance(sigma, dict):
                        problems.append(f"{here}: not a mapping")
                        continue
                    problems += [f"{k}: not a SigmaConfig key" for k in _unknown_keys(sigma, SigmaConfig, here)]
                    try:
                        from_dict(SigmaConfig, sigma, here)
                    except ConfigError as e:
                        problems.append(str(e))
            else:
                problems += variant_sigma_problems(value, path)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            problems += variant_sigma_problems(v, f"{where}[{i}]")
    return problems


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    raw = yaml.safe_load(path.read_text())
    load_yaml(path, _config_class(raw))
    assert not variant_sigma_problems(raw), variant_sigma_problems(raw)


def test_variant_sigma_check_sees_inside_variants():
    """The check above on shipped configs with variants added: a good variant passes, a misspelt key
    (top level or in sigma.rl) or a wrong value is named, in a search and in a compare's base."""
    good = {"init": 2.0, "per_landmark": [1.0, 2.0], "rl": {"step_factor": 1.5, "allow_stop": False}}
    bad = {"init": 2.0, "sigma_init": 1.0, "rl": {"step_facter": 1.5}}
    search = yaml.safe_load((ROOT / "tune_configs" / "synthetic_population.yaml").read_text())
    search["variants"] = [{"name": "ok", "method": "fixed", "sigma": good}, {"name": "typo", "method": "rl", "sigma": bad}]
    assert sorted(p.split(":")[0] for p in variant_sigma_problems(search)
                  if "not a SigmaConfig key" in p) == ["variants[1].sigma.rl.step_facter", "variants[1].sigma.sigma_init"]
    compare = yaml.safe_load((ROOT / "tune_configs" / "synthetic_benchmark.yaml").read_text())
    compare.setdefault("base", {})["variants"] = [{"name": "v", "sigma": {"init": "wide"}}]
    assert variant_sigma_problems(compare) and "base.variants[0].sigma" in variant_sigma_problems(compare)[0]
    compare["base"]["variants"] = [{"name": "v", "sigma": good}]
    assert variant_sigma_problems(compare) == []


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p, ExperimentConfig)
    assert (
        str(p) in str(e.value) and "train.epochz" in str(e.value) and "unknown key" in str(e.value)
    )


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int"):
        load_yaml(p, ExperimentConfig)


def test_literal_and_tuple_checked(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("sigma:\n  method: magic\n")
    with pytest.raises(ConfigError, match=r"sigma\.method: 'magic' is not one of"):
        load_yaml(p, ExperimentConfig)
    p.write_text("data:\n  input_size: [64]\n")
    with pytest.raises(ConfigError, match=r"data\.input_size: expected 2 values"):
        load_yaml(p, ExperimentConfig)


def test_nested_search_config(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(
        "name: x\nexperiment:\n  train:\n    epochs: 2\npolicy:\n  lambda: 0.9\nseeds: [3]\n"
    )
    cfg = load_yaml(p, SearchConfig)
    assert cfg.experiment.train.epochs == 2 and cfg.policy.lambda_ == 0.9 and cfg.seeds == [3]
