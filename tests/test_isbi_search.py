"""An ISBI 2015-layout dataset through `distlmk search` with a real (tiny) network: records,
summary, report and analysis carry BOTH test splits, Test1 and Test2."""

import pandas as pd
import yaml
from test_isbi2015 import make_isbi

from distlmk import schema as S
from distlmk.cli import main


def test_isbi_search_reports_test1_and_test2(ray_session, tmp_path):
    make_isbi(tmp_path / "isbi_data", counts=(5, 3, 2))
    cfg = {
        "name": "isbi", "methods": ["fixed"], "fixed_sigmas": [2.0], "seeds": [0], "resources": {"cpu": 1.0},
        "experiment": {
            "data": {"format": "isbi2015", "root": str(tmp_path / "isbi_data"), "input_size": [64, 64], "val_fraction": 0.2},
            "model": {"base_channels": 8, "depth": 3},
            "train": {"epochs": 2, "batch_size": 4, "device": "cpu"},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", "--config", str(path), "--out", str(tmp_path), "--quiet"]) == 0
    exp = tmp_path / "isbi"
    last = pd.read_parquet(exp / "records.parquet").sort_values(S.ITERATION).iloc[-1]
    summary = pd.read_parquet(exp / "summary.parquet").iloc[0]
    for split, n in (("Test1", 3), ("Test2", 2)):
        for name in ("mre_mm", "sdr_2_0", "baseline_mean_mre_mm"):
            assert pd.notna(last[S.test_key(split, name)]), (split, name)
            assert pd.notna(summary[S.test_key(split, name)]), (split, name)
        assert len(last[S.test_key(split, "errors_mm")]) == n  # per test image
    report = (exp / "report.md").read_text()
    assert "Test1 MRE (mm)" in report and "Test2 MRE (mm)" in report
    assert main(["analyze", str(exp)]) == 0
    analysis = (exp / "analysis" / "report.md").read_text()
    assert "Test1" in analysis and "Test2" in analysis
