"""What a runner pod pays before its first model call: the time and peak memory of a process that
imports the runner (`jesus.runner.pod`, what `jesus runner` loads), against a bare interpreter and
against the SDKs the runner no longer imports at start (the OpenAI SDK, the MCP SDK).

Run: .venv/bin/python -m tests.bench.bench_runner_start [--repeat 9]

Each row starts `repeat` fresh processes one after another and prints the median wall time and the
median peak RSS (from the child's rusage). The baseline (`python -c pass`) is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ROWS = {
    "bare interpreter": "pass",
    "runner (jesus.runner.pod)": "import jesus.runner.pod",
    "runner + OpenAI SDK (before)": "import jesus.runner.pod, openai",
    "runner + OpenAI and MCP SDKs (before)": "import jesus.runner.pod, openai, mcp",
}


def measure(code: str) -> tuple[float, float]:
    """One process: wall seconds and peak RSS in MiB."""
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "adapters", ".")),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=environ, check=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: rows run from smallest to largest.
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    base_wall = 0.0
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeat} processes per row")
    for label, code in ROWS.items():
        samples = [measure(code) for _ in range(args.repeat)]
        wall = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        base_wall = base_wall or wall
        print(f"{label:40} {wall * 1000:7.0f} ms ({wall / base_wall:4.1f}x bare)  peak {rss:6.1f} MiB")


if __name__ == "__main__":
    main()
