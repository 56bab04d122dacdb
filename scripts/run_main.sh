#!/usr/bin/env bash
# The main job: a small population search (fixed / learned / adaloss / rl, a few seeds) on the
# shipped synthetic data, on an embedded local Ray; writes results/<name>/ with report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/distlmk search --config tune_configs/synthetic_population.yaml --out results "$@"
