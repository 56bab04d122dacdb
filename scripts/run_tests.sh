#!/usr/bin/env bash
# Set up, lint, then run the test suite. pytest's "no tests collected" (exit 5) is not a
# failure here; every other non-zero exit is.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/ruff check distlmk tests benchmarks analysis scripts || exit 1
.venv/bin/lint-imports || exit 1  # the layering contracts in pyproject.toml
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$rc"
