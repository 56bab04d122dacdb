"""Regenerate the table in benchmarks/README.md from the committed results/*.json.

`python -m benchmarks.table` rewrites the part of the README between the table markers; every
figure in it comes from a JSON file that the benchmark wrote in the same run as its comparison.
`--check` exits 1 when the README is not what the JSON files give (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- table:start (python -m benchmarks.table) -->", "<!-- table:end -->"


def _load(name: str) -> dict | None:
    f = RESULTS / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _when(r: dict) -> str:
    """When, and how busy the host was (1-minute load average at start and end, on `cpus` cores)."""
    load = r.get("loadavg_1m_start_end")
    when = r.get("measured_at", "?")
    return f"{when}, load {load[0]:.1f}/{load[1]:.1f} on {r.get('cpus')} cores" if load else when


def _met(v) -> str:
    return "–" if v is None else ("yes" if v else "**no**")


def _rows() -> list[str]:
    rows = []
    if r := _load("codec"):
        rows.append(f"| `codec` | vectorised Gaussian encode vs a per-landmark Python loop | {r['encode_vectorised_ms']:.2f} ms vs "
                    f"{r['encode_loop_ms']:.1f} ms → **{r['encode_speedup']:.1f}×** (max diff {r['max_abs_diff']:.1e}) "
                    f"| ≥ 20× | {_met(r['encode_goal_met'])} | {_when(r)} |")
        rows.append(f"| `codec` | DARK decode round trip, sigma 1–8 | worst error **{max(r['decode_max_error_px'].values()):.1e} px** "
                    f"| ≤ 0.05 px | {_met(r['decode_goal_met'])} | {_when(r)} |")
    if r := _load("trainer_throughput"):
        runs = " ; ".join(f"{x['device']}: **{x['images_per_s']:.1f} images/s**" for x in r["runs"])
        rows.append(f"| `trainer_throughput` | full training step (augmentation, targets, U-Net, loss, AdamW), "
                    f"`{r['config']}`, {r['torch_threads']} torch threads | {runs} | – | – | {_when(r)} |")
    if r := _load("data_pipeline"):
        rows.append(f"| `data_pipeline` | batching + augmentation alone vs the full training step, {r['threads']} thread | "
                    f"{r['load_images_per_s']:,.0f} vs {r['train_images_per_s']:.1f} images/s → loader **{r['ratio']:.0f}×** "
                    f"faster | loader never the bottleneck | {_met(r['goal_met'])} | {_when(r)} |")
    if r := _load("overhead"):
        pr, tr, er = r["plain_range_s"], r["tune_rl_range_s"], r["extra_fraction_range"]
        lo, hi = min(r["ppo_updates_per_run"]), max(r["ppo_updates_per_run"])
        rows.append(
            f"| `overhead` | driver-observed s/epoch, plain loop vs Tune + rl controller (report, checkpoint, a decision "
            f"per epoch, {lo if lo == hi else f'{lo}–{hi}'} PPO updates per run), "
            f"{r['landmarks']} landmarks, {r['epochs']} epochs (first left out) × {r['repeats']} interleaved repeats | "
            f"plain {r['plain_median_s']:.3f} s ({pr[0]:.3f}–{pr[1]:.3f}) vs Tune {r['tune_rl_median_s']:.3f} s "
            f"({tr[0]:.3f}–{tr[1]:.3f}) → **{100 * r['extra_fraction_median']:+.1f} %** median "
            f"(range {100 * er[0]:+.1f} to {100 * er[1]:+.1f} %) | ≤ +5 % | {_met(r['goal_met'])} | {_when(r)} |")
    for name, label in (("policy_server", "PPO updates running"), ("policy_server_frozen", "updates frozen (`--freeze`)")):
        if r := _load(name):
            parts = [f"{x['trials']}: **{x['policy']['calls_per_s']:,.0f}/s**, p50 {x['policy']['p50_ms']:.0f} ms, "
                     f"p99 {x['policy']['p99_ms']:,.0f} ms (no-op actor {x['noop_actor']['calls_per_s']:,.0f}/s, "
                     f"ratio {x['throughput_ratio']:.2f})" for x in r["rows"]]
            judged = [x["goal_met"] for x in r["rows"] if x["goal_met"] is not None]
            rows.append(f"| `{name}` | decisions/s and latency of closed-loop simulated trials ({r['landmarks']} landmarks, "
                        f"{r['decisions_per_trial']} decisions each, {label}, {r['updates_during_measurement']} updates "
                        f"while measured) vs a no-op async actor, same payload and concurrency | {'; '.join(parts)} | "
                        f"≥ 2,000/s at 256, p99 ≤ 20 ms | {_met(judged[0] if judged else None)} | {_when(r)} |")
    if (r := _load("policy_server")) and (sc := r.get("scale")):
        def mode(x: dict) -> str:
            return f"{x['decisions_per_s']:,.0f}/s (p99 {x['p99_ms']:,.0f} ms)"

        parts = [f"{x['trials']:,}: context **{x['context']['decisions_per_s']:,.0f}/s** (p99 {x['context']['p99_ms']:,.0f} ms), "
                 f"step only {mode(x['step'])}, no-op {mode(x['noop'])}, no-op step only {mode(x['noop_step'])} → "
                 f"context/step **{x['context_throughput_ratio']:.2f}** (no-op decide/step "
                 f"{x['noop_decide_over_step_ratio']:.2f}; board alone {x['board_in_process']['us_per_context']:,.0f} "
                 f"µs/context one at a time, {x['board_in_process']['us_per_context_batched']:,.0f} µs batched by epoch)"
                 for x in sc["sizes"]]
        rows.append(f"| `policy_server` (scale) | decisions/s of one population of simulated trials ({sc['landmarks']} landmarks, "
                    f"{sc['decisions_per_trial']} decisions each, updates frozen): one `decide` call per decision (board "
                    f"post, context at peer wait 0, completed step) vs "
                    f"`step` only on the same server vs a no-op actor answering the same calls, {sc['repeats']} alternating "
                    f"repeats | {'; '.join(parts)} | context ≥ {100 * sc['goal_context_ratio']:.0f} % of step-only decisions/s "
                    f"| {_met(sc['goal_met'])} | {_when(r)} |")
    return rows


def render() -> str:
    head = ["| benchmark | what is compared | measured | goal | met | when |", "|---|---|---|---|---|---|"]
    return "\n".join([START, *head, *_rows(), END])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="only check that the README table is up to date")
    args = ap.parse_args()
    text = README.read_text()
    if START not in text or END not in text:
        print(f"{README}: no table markers", file=sys.stderr)
        return 1
    new = text[: text.index(START)] + render() + text[text.index(END) + len(END):]
    if args.check:
        if new != text:
            print("benchmarks/README.md is out of date: run python -m benchmarks.table", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"wrote the table of {README} from {len(list(RESULTS.glob('*.json')))} result files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
