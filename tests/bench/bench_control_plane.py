"""Warm start time of the local control plane (binaries already cached), over several starts.

Run: .venv/bin/python tests/bench/bench_control_plane.py [--starts N]
Prints each start, then min/median/max. The cold build is `jesus dev build` on an empty cache
(JESUS_CACHE_DIR=$(mktemp -d) GOCACHE=$(mktemp -d) .venv/bin/jesus dev build), which prints per-binary times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from jesus.devcluster import ControlPlane, ensure_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    ensure_all()
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.starts):
            plane = ControlPlane(Path(tmp) / f"plane-{index}", die_with_parent=True)
            started = time.monotonic()
            plane.start()
            seconds.append(time.monotonic() - started)
            plane.stop()
            print(f"start {index + 1}: {seconds[-1]:.2f} s (until nodes Ready and default SA present)")
    print(
        f"warm start over {len(seconds)} starts: min {min(seconds):.2f} s, "
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s"
    )


if __name__ == "__main__":
    main()
