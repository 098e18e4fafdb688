"""What tracing costs the operator: its CPU per admitted run with tracing off and on, in one run.

Run from the repository root:

    .venv/bin/python -m tests.bench.bench_operator_tracing                  # 300 runs, 2 rounds
    .venv/bin/python -m tests.bench.bench_operator_tracing --runs 300 --rounds 3 --json figures.json

Each round runs the operator load benchmark (tests/bench/bench_operator.py, its own control plane and
`jesus operator` and `jesus router` as processes) twice, taking turns: `off` (no OTEL_* variable, the
default) and `on` (`--jaeger`: both programs export their spans over OTLP/HTTP to a real Jaeger, as
the chart sets them up when an endpoint is given). Figures: the operator's CPU seconds (user + system)
per admitted run in each, their difference in per cent (the target: at most 5 %), and the admission
latency P50 of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TARGET_PER_CENT = 5.0


def one(mode: str, runs: int, timeout: float, folder: Path) -> dict[str, Any]:
    """One operator benchmark with tracing `mode` ("off" or "on"); its figures."""
    figures = folder / f"{mode}.json"
    command = [sys.executable, "-m", "tests.bench.bench_operator", "--runs", str(runs)]
    command += ["--timeout", str(timeout), "--json", str(figures), *(["--jaeger"] if mode == "on" else [])]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    measured = json.loads(figures.read_text())["operator"]
    if not measured["all_admitted"]:
        raise RuntimeError(f"tracing {mode}: only {measured['runs_admitted']} of {runs} runs were admitted")
    return {
        "operator_cpu_ms_per_run": measured["cpu_seconds"]["operator"] / measured["runs_admitted"] * 1000,
        "admission_p50_s": measured["admission_latency"]["p50"],
    }


def bench(runs: int, rounds: int, timeout: float) -> dict[str, Any]:
    """`rounds` rounds of off then on; the figures."""
    seen: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-operator-tracing-") as folder:
        for _ in range(rounds):
            for mode in seen:
                seen[mode].append(one(mode, runs, timeout, Path(folder)))
    cpu = {m: statistics.mean(r["operator_cpu_ms_per_run"] for r in rs) for m, rs in seen.items()}
    return {
        "runs": runs,
        "rounds": rounds,
        "operator_cpu_ms_per_run": {m: round(v, 2) for m, v in cpu.items()},
        "operator_cpu_ms_per_run_each_round": {
            m: [round(r["operator_cpu_ms_per_run"], 2) for r in rs] for m, rs in seen.items()
        },
        "tracing_cpu_per_cent": round((cpu["on"] / cpu["off"] - 1) * 100, 1),
        "admission_p50_s": {m: [r["admission_p50_s"] for r in rs] for m, rs in seen.items()},
        "target_per_cent": TARGET_PER_CENT,
    }


def main() -> None:
    """Measure and print (and write with --json) the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300, help="AgentRuns created at once in each benchmark")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of off then on")
    parser.add_argument("--timeout", type=float, default=300, help="each benchmark's wait for admissions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = bench(args.runs, args.rounds, args.timeout)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
