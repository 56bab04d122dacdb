from pathlib import Path

import pytest

from distlmk.config import AblationConfig, CompareConfig, ConfigError, ExperimentConfig, SearchConfig, load_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "tune_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    import yaml

    keys = set(yaml.safe_load(path.read_text()))
    cls = (AblationConfig if "population_sizes" in keys else CompareConfig if "heldout_draws" in keys or "base" in keys
           else SearchConfig if "methods" in keys or "variants" in keys else ExperimentConfig)
    load_yaml(path, cls)


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
