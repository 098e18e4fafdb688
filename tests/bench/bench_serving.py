"""How fast self-hosted ModelAdapters settle: apply → Ready (placed on the GPU node) and apply → Ready
False with the scheduler's reason (too many GPUs), with `jesus operator` running on the local control
plane.

Run: .venv/bin/python tests/bench/bench_serving.py [--adapters N] [--resync-seconds S]
Prints the time for each adapter, then min/median/max per outcome.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.builders.adapters import scripted_adapter, vllm_adapter
from tests.builders.manifest import set_field
from tests.cluster.operator_process import (
    apply_objects,
    condition,
    get_object,
    install_crds,
    running_operator,
)

from jesus.devcluster import ControlPlane

NAMESPACE = "bench-serving"


def _settled(plane: ControlPlane, name: str) -> str | None:
    ready = condition(get_object(plane, NAMESPACE, "modeladapter", name), "Ready")
    if ready is None:
        return None
    if ready["status"] == "True":
        return "Ready"
    return "Unschedulable" if ready["reason"] == "Unschedulable" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=4, help="adapters of each kind (1 GPU each fits 8)")
    parser.add_argument("--resync-seconds", type=float, default=10.0, help="the operator's resync timer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "plane", die_with_parent=True)
        plane.start()
        try:
            install_crds(plane)
            plane.kubectl("create", "namespace", NAMESPACE)
            with running_operator(
                plane, NAMESPACE, Path(tmp) / "operator.log", resync_seconds=args.resync_seconds
            ):
                # The clock starts once the operator answers: a scripted adapter it has marked Ready.
                apply_objects(plane, NAMESPACE, scripted_adapter("warm-up"))
                while condition(get_object(plane, NAMESPACE, "modeladapter", "warm-up"), "Ready") is None:
                    time.sleep(0.2)
                results: dict[str, list[float]] = {"Ready": [], "Unschedulable": []}
                for index in range(args.adapters):
                    for outcome, gpus in (("Ready", 1), ("Unschedulable", 16)):
                        name = f"{outcome.lower()}-{index}"
                        obj: Any = set_field(vllm_adapter(name), "spec.serving.gpu.count", gpus)
                        started = time.monotonic()
                        apply_objects(plane, NAMESPACE, obj)
                        while _settled(plane, name) != outcome:
                            if time.monotonic() - started > 120:
                                raise SystemExit(f"{name} did not become {outcome} within 120 s")
                            time.sleep(0.1)
                        results[outcome].append(time.monotonic() - started)
                        print(f"{name}: {outcome} after {results[outcome][-1]:.2f} s")
        finally:
            plane.stop()
    print(json.dumps({"resyncSeconds": args.resync_seconds, "adaptersPerOutcome": args.adapters}))
    for outcome, seconds in results.items():
        print(
            f"apply → {outcome}: min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s, "
            f"max {max(seconds):.2f} s"
        )


if __name__ == "__main__":
    main()
