"""A search and its report: the one entry point that `distlmk search`, `distlmk compare` and the tests use.

Population code (Ray, Tune) and analysis (files -> report) never import each other; this layer
joins them, below the command line.
"""

from __future__ import annotations

from distlmk import rundir
from distlmk.config import SearchConfig


def search(cfg: SearchConfig, out_dir: str = "results", address: str | None = None, resume: bool = False,
           quiet: bool = True):
    """Run the population (`run_search`), then write its summary and report; returns the SearchOutcome."""
    from distlmk.analysis.report import write_summary_and_report
    from distlmk.population.search import run_search

    outcome = run_search(cfg, out_dir=out_dir, address=address, resume=resume, quiet=quiet)
    summary = write_summary_and_report(outcome.exp_dir, outcome.resources["cpu"], outcome.resources.get("gpu", 0.0),
                                       outcome.policy_stats, cfg.name)
    if not quiet:
        report = outcome.exp_dir / rundir.REPORT_FILE
        print(f"\n{len(summary)} trials in {outcome.elapsed_s:.0f} s; report: {report}")
        print(report.read_text())
    return outcome
