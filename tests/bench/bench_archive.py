"""Archive write throughput: finished runs written to SQLite and to PostgreSQL by `RecordStore`.

Run: .venv/bin/python -m tests.bench.bench_archive [--runs N] [--writers W]
Each run is the test builders' finished run with 4 model calls and its two decisions (admit, settle), so
one write is a run row, 4 call rows and 3 audit rows in one transaction, as the operator writes it. SQLite
is a file in a temporary folder (WAL, synchronous=FULL as the operator opens it); PostgreSQL is Debian's
server started as the tests start it (fsync off there: a figure of the archive's code and the wire, not of
a disk). `writers` stores write at once (as after an operator restart, or several operators), each on its
own connection. Prints runs per second and the P50/P99 of one write, then verifies the chain.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from tests.builders.postgres_server import PostgresServer
from tests.builders.records import finished_run

from jesus.api.agentrun import AgentRunStatus
from jesus.logic.records import build_run_record, decisions
from jesus.records import RecordStore, database_url

NOW = "2026-12-01T00:00:00Z"


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench(url: str, runs: int, writers: int) -> str:
    stores = [RecordStore(database_url(url)) for _ in range(writers)]
    await stores[0].migrate()
    objs = [finished_run(f"run-{i:06d}", calls=4) for i in range(runs)]
    records = [build_run_record(o) for o in objs]
    histories = [
        decisions(
            None, AgentRunStatus.model_validate(o["status"]), namespace="team-a", name="r", uid=r.uid, now=NOW
        )
        for o, r in zip(objs, records, strict=True)
    ]
    latencies: list[float] = []

    async def writer(index: int) -> None:
        for i in range(index, runs, writers):
            started = time.perf_counter()
            await stores[index].archive_run(records[i], histories[i], NOW)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    verification = await stores[0].verify()
    assert verification.broken is None and verification.rows == runs * 3, verification
    assert await stores[0].count_runs() == runs
    for store in stores:
        await store.close()
    return (
        f"{runs / elapsed:8.0f} runs/s  P50 {percentile(latencies, 0.5):6.2f} ms  "
        f"P99 {percentile(latencies, 0.99):6.2f} ms  ({runs} runs, {writers} writer(s), {elapsed:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="jesus-bench-archive-"))
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="jesus-bench-postgres-")))
    server.start()
    try:
        for writers in args.writers:
            sqlite = f"sqlite:///{folder / f'archive-{writers}.db'}"
            print(f"SQLite     {asyncio.run(bench(sqlite, args.runs, writers))}", flush=True)
            print(
                f"PostgreSQL {asyncio.run(bench(server.create_database(), args.runs, writers))}", flush=True
            )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(server.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
