#!/usr/bin/env bash
# The main job: a small population search (fixed / learned / adaloss / rl, a few seeds) on the
# shipped synthetic data, on an embedded local Ray; writes results/<name>/ with report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/distlmk search --config tune_configs/synthetic_population.yaml --out results "$@"
# the headline of the committed held-out comparison (`distlmk compare`, ~40 min, not rerun here)
result=benchmarks/results/comparison_synthetic_benchmark.json
if [ -f "$result" ]; then
  echo
  echo "Does the policy beat a sigma grid? ($result; rerun: distlmk compare --config tune_configs/synthetic_benchmark.yaml)"
  .venv/bin/python -c "import json, sys; from distlmk.analysis.comparison import headline; print(headline(json.load(open(sys.argv[1]))))" "$result"
fi
