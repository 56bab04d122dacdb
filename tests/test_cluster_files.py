"""Every cluster file validates offline: launcher YAMLs with Ray's own schema and checks,
KubeRay manifests against the CRD's OpenAPI schema (kept in tests/data with its version)."""

import copy
import gzip
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
DATA = Path(__file__).resolve().parent / "data"
LAUNCHERS = sorted(CLUSTER.glob("*.yaml"))
MANIFESTS = sorted((CLUSTER / "kuberay").glob("*.yaml"))


def crd_schema(kind: str) -> dict:
    name = {"RayCluster": "rayclusters", "RayJob": "rayjobs"}[kind]
    blob = json.loads(gzip.open(DATA / f"kuberay-v1.7.0-{name}-v1.schema.json.gz").read())
    assert blob["kind"] == kind and "v1.7.0" in blob["source"]
    return strict(blob["openAPIV3Schema"])


def strict(schema):
    """Kubernetes rejects unknown fields of structural schemas (strict field validation);
    JSON Schema does not unless told: close every object that lists its properties."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def validate_manifest(doc: dict) -> None:
    assert doc["apiVersion"] == "ray.io/v1"
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.validate(body, crd_schema(doc["kind"]))


def test_files_are_there():
    assert {p.name for p in LAUNCHERS} >= {"aws-gpu.yaml", "gcp-gpu.yaml", "onprem.yaml"}
    assert {p.name for p in MANIFESTS} >= {"raycluster.yaml", "rayjob.yaml"}


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_validates_with_rays_schema(path):
    validate_config(prepare_config(yaml.safe_load(path.read_text())))


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_broken_launcher_fails(path):
    cfg = yaml.safe_load(path.read_text())
    cfg["setup_comands"] = cfg.pop("setup_commands")  # misspelt key
    with pytest.raises(jsonschema.ValidationError, match="setup_comands"):
        validate_config(prepare_config(cfg))
    cfg = yaml.safe_load(path.read_text())
    cfg["provider"]["type"] = 42
    with pytest.raises((jsonschema.ValidationError, NotImplementedError)):
        validate_config(prepare_config(cfg))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifest_validates_and_requests_gpus(path):
    doc = yaml.safe_load(path.read_text())
    validate_manifest(doc)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    limits = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_broken_manifest_fails(path):
    doc = yaml.safe_load(path.read_text())
    bad = copy.deepcopy(doc)
    spec = bad["spec"] if bad["kind"] == "RayCluster" else bad["spec"]["rayClusterSpec"]
    spec["workerGroupSpecs"][0]["replicaz"] = spec["workerGroupSpecs"][0].pop("replicas")
    with pytest.raises(jsonschema.ValidationError, match="replicaz"):
        validate_manifest(bad)
    bad = copy.deepcopy(doc)
    spec = bad["spec"] if bad["kind"] == "RayCluster" else bad["spec"]["rayClusterSpec"]
    spec["workerGroupSpecs"][0]["maxReplicas"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(bad)
