"""The layering contracts (pyproject.toml [tool.importlinter]; scripts/run_tests.sh runs lint-imports before
the tests) would catch a break, and analysis imports neither Ray nor torch."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_a_forbidden_import_added_by_hand_breaks_the_contracts(tmp_path):
    shutil.copytree(ROOT / "distlmk", tmp_path / "distlmk", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    io = tmp_path / "distlmk" / "data" / "io.py"
    io.write_text(io.read_text() + "\nimport distlmk.population.search  # noqa: E402,F401  (forbidden)\n")
    report = tmp_path / "distlmk" / "analysis" / "report.py"
    report.write_text(report.read_text() + "\nimport torch  # noqa: E402,F401  (forbidden)\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    assert "distlmk.data.io -> distlmk.population.search" in out.stdout
    assert "distlmk.analysis.report -> torch" in out.stdout


def test_analysis_imports_neither_ray_nor_torch():
    code = "import distlmk.analysis.report, sys; assert 'ray' not in sys.modules and 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
