"""Offline validation throughput: `jesus validate` over generated spec files of growing size.

Run: .venv/bin/python -m tests.bench.bench_validate [--objects 10 100 1000] [--repeat 3]
Each file holds one ModelAdapter, RoutePolicy and Budget plus N AgentRuns (a chain of dependsOn).
Prints, per size, the best of `repeat` runs of: YAML parse with line tracking, schema validation of
each object, and the cross-object checks, in milliseconds, and the time per object.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.builders.agentrun import agent_run
from tests.builders.spec_files import complete_set, to_yaml

from jesus.specs import load_documents, parse_documents, validate_specs


def build_text(runs: int) -> str:
    objects = complete_set()[:3] + [
        agent_run(f"run-{i}", depends_on=(f"run-{i - 1}",) if i else ()) for i in range(runs)
    ]
    return to_yaml(*objects)


def best_of(repeat: int, text: str) -> tuple[float, float, float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        documents = parse_documents(text, Path("bench.yaml"))
        parsed = time.perf_counter()
        spec_set = load_documents(documents)
        loaded = time.perf_counter()
        problems = validate_specs(spec_set)
        checked = time.perf_counter()
        assert problems == [], problems[:3]
        timings.append((parsed - start, loaded - parsed, checked - loaded))
    return min(timings, key=sum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'runs':>6} {'parse ms':>10} {'schema ms':>10} {'checks ms':>10} {'ms/object':>10}")
    for runs in args.objects:
        parse, schema, checks = best_of(args.repeat, build_text(runs))
        total = parse + schema + checks
        print(
            f"{runs:>6} {parse * 1000:>10.1f} {schema * 1000:>10.1f} {checks * 1000:>10.1f} "
            f"{total * 1000 / (runs + 3):>10.2f}"
        )


if __name__ == "__main__":
    main()
