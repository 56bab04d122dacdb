"""benchmarks/README.md's table is exactly what the committed results/*.json give."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_table_is_generated_from_the_committed_results():
    results = sorted(p.stem for p in (ROOT / "benchmarks" / "results").glob("*.json"))
    assert {"codec", "overhead", "policy_server", "policy_server_frozen"} <= set(results), results
    out = subprocess.run([sys.executable, "-m", "benchmarks.table", "--check"], cwd=ROOT, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0, out.stderr
