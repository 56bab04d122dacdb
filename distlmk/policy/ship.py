"""The policy that ships with distlmk: the one `distlmk compare` trained on its training draws.

How to ship a new one (after `distlmk compare --config tune_configs/synthetic_benchmark.yaml`):
    python -m distlmk.policy.ship results/synthetic_benchmark

It copies the comparison's final policy (LearnerGroup checkpoint, ~200 kB) into
`distlmk/policy/shipped_policy/final/` with `provenance.json`: the compare config, the git commit,
the learning curve, the held-out result of the frozen policy and a SHA-256 over the checkpoint's
files, so a test can prove the shipped weights are the ones the provenance names. `distlmk search`
starts rl from it by default (learning on; `--freeze-policy` freezes it; `--fresh-policy`, a
`policy.checkpoint` or a warm start in the config start elsewhere); `distlmk compare
--policy-checkpoint shipped` evaluates it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from distlmk import rundir
from distlmk.atomic import atomic_write_json

SHIPPED_DIR = Path(__file__).with_name("shipped_policy")
SHIPPED = "shipped"  # the name `--policy-checkpoint` and `policy.checkpoint` accept for it
PROVENANCE = "provenance.json"


def shipped_checkpoint() -> Path:
    """The shipped policy's checkpoint folder (what PolicyConfig.checkpoint takes)."""
    path = SHIPPED_DIR / rundir.POLICY_FINAL
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no policy ships with this install; train one with distlmk compare and "
                                "ship it with python -m distlmk.policy.ship RESULTS/<name>")
    return path


def resolve_checkpoint(value: str | None) -> str | None:
    """`shipped` -> the shipped checkpoint's path; any other value as it is."""
    return str(shipped_checkpoint()) if value == SHIPPED else value


def starts_from_shipped(cfg) -> bool:
    """Whether `distlmk search` starts this search's central policy from the shipped one: it has rl
    trials and its config names neither a checkpoint nor a warm start (`--fresh-policy` opts out).
    `cfg` is a `SearchConfig`."""
    return "rl" in cfg.all_methods() and cfg.policy.checkpoint is None and cfg.policy.pretrain_rounds == 0


def digest(checkpoint: str | Path) -> str:
    """SHA-256 over every file of a checkpoint folder (relative path and bytes, in sorted order)."""
    root = Path(checkpoint)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def provenance() -> dict:
    return json.loads((SHIPPED_DIR / PROVENANCE).read_text())


def ship(compare_root: str | Path, dest: Path = SHIPPED_DIR) -> Path:
    """Copy a finished comparison's frozen policy and its provenance into `dest`."""
    root = Path(compare_root).resolve()
    c = rundir.read_json(root / rundir.COMPARISON_JSON, "run distlmk compare first")
    if not c.get("policy"):
        raise ValueError(f"{root}: the comparison evaluated no rl policy")
    source = Path(c["policy"])
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp / rundir.POLICY_FINAL)
    if (source.parent / rundir.SERVER_STATE).is_file():  # the counters a restored server carries on
        shutil.copy2(source.parent / rundir.SERVER_STATE, tmp / rundir.SERVER_STATE)
    rl = c["methods"].get("rl", {})
    atomic_write_json(tmp / PROVENANCE, {
        "source": str(source), "shipped_at": time.time(), "commit": c.get("commit"),
        "sha256": digest(tmp / rundir.POLICY_FINAL), "config": c.get("config"),
        "learning_curve": c.get("learning_curve"),
        "heldout": {"draws": c.get("heldout_draws"), "rl_test_mre_mm": rl.get("test_mre_mm"),
                    "rl_mean": rl.get("mean"), "rl_vs": c.get("rl_vs"), "landmark_pbt_vs": c.get("landmark_pbt_vs")},
    })
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


if __name__ == "__main__":
    print(f"shipped {ship(sys.argv[1])}")
