"""Typed experiment configuration, loaded from YAML with errors that name the key and file.

Every YAML config maps onto the dataclasses of `types`; an unknown key or a wrong type is a
`ConfigError` such as ``tune_configs/x.yaml: train.epochs: expected int, got 'ten'`` (`load`,
which also holds the cross-field rules); `explain` renders `distlmk config --explain`.
"""

from distlmk.config.explain import explain, field_docs, format_explain, json_default
from distlmk.config.load import ConfigError, from_dict, load_yaml, to_dict, validate_search
from distlmk.config.types import (
    AblationConfig,
    AugmentConfig,
    CompareConfig,
    DataConfig,
    ExperimentConfig,
    FaultConfig,
    FaultsConfig,
    LandmarkPBTConfig,
    LandmarkPBTOverrides,
    Method,
    ModelConfig,
    PolicyConfig,
    ResourcesConfig,
    RLControlConfig,
    RLControlOverrides,
    SchedulerConfig,
    SearchConfig,
    SigmaConfig,
    SigmaOverrides,
    SimulationConfig,
    TrainConfig,
    VariantConfig,
)

__all__ = [
    "AblationConfig", "AugmentConfig", "CompareConfig", "ConfigError", "DataConfig", "ExperimentConfig",
    "FaultConfig", "FaultsConfig", "LandmarkPBTConfig", "LandmarkPBTOverrides", "Method", "ModelConfig", "PolicyConfig", "RLControlConfig", "RLControlOverrides",
    "ResourcesConfig", "SchedulerConfig", "SearchConfig", "SigmaConfig", "SigmaOverrides",
    "SimulationConfig", "TrainConfig", "VariantConfig", "explain", "field_docs", "format_explain", "from_dict",
    "json_default", "load_yaml", "to_dict", "validate_search",
]
