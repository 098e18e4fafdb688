"""The read API's latency over a large archive: P50/P95/P99 of the list, detail and cost queries with 50
clients at once, through HTTP to a `jesus api` process.

Run: .venv/bin/python -m tests.bench.bench_read_api [--runs 100000] [--clients 50] [--requests 20]
     [--database sqlite|postgresql]

The archive is filled by bulk insert (one record built by `build_run_record`, copied with other names,
UIDs, namespaces, teams, users, models and completion times; two calls each): 20 namespaces, 50 users,
4 models over 2 adapters, completions spread over 90 days. `jesus api --local` serves it (one uvicorn
process; local mode, so no review: in a cluster a caller's reviews are cached, one per 10 s). Each of
`clients` clients sends `requests` requests of each kind in turn, one at a time:

- list: /v1/runs?limit=50, alternately the first page everywhere, the first page of one namespace, and
  the page after a cursor taken 10 pages deep;
- detail: /v1/runs/NS/NAME of a random run;
- cost: /v1/costs?groupBy=team|user|model|adapter over a random 7-day window of one namespace, or over
  30 days everywhere (one in four).

The client runs on the same machine as the server (and the database): the figures include its CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from tests.builders.postgres_server import PostgresServer
from tests.builders.records import finished_run

from jesus.devcluster.controlplane import free_port
from jesus.logic.records import build_run_record
from jesus.records import RecordStore, database_url
from jesus.records.schema import run_calls, runs

NAMESPACES = [f"team-{i:02d}" for i in range(20)]
USERS = [f"user-{i:02d}@example.com" for i in range(50)]
MODELS = [("m-small", "primary"), ("m-large", "primary"), ("m-fast", "backup"), ("m-cheap", "backup")]
START = datetime(2026, 9, 1, tzinfo=UTC)
SPAN_SECONDS = 90 * 86400
BATCH = 5000


def moment(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def fill(url: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Bulk-insert `count` runs; their (namespace, name)."""
    store = RecordStore(database_url(url))
    await store.migrate()
    template = build_run_record(finished_run("template", calls=2))
    document = template.document_json
    rng = random.Random(seed)
    names: list[tuple[str, str]] = []
    started = time.perf_counter()
    async with store.engine.begin() as connection:
        for first in range(0, count, BATCH):
            run_rows: list[dict[str, Any]] = []
            call_rows: list[dict[str, Any]] = []
            for i in range(first, min(count, first + BATCH)):
                namespace = NAMESPACES[rng.randrange(len(NAMESPACES))]
                name, uid = f"run-{i:06d}", f"{i:08d}-0000-4000-8000-{rng.getrandbits(48):012x}"
                completion = moment(rng.uniform(0, SPAN_SECONDS))
                model, adapter = MODELS[rng.randrange(len(MODELS))]
                cost = rng.randrange(100, 50000)
                run_rows.append(
                    {
                        "uid": uid, "namespace": namespace, "name": name,
                        "phase": "Succeeded" if rng.random() < 0.9 else "Failed",
                        "team": namespace, "owner_user": USERS[rng.randrange(len(USERS))],
                        "created": completion, "start_time": completion, "completion_time": completion,
                        "spec_digest": template.spec_digest, "trace_id": template.trace_id,
                        "cost_micros": 2 * cost, "input_tokens": 2000, "output_tokens": 400, "attempts": 1,
                        "record_version": 1, "record": document, "archived_at": completion,
                    }
                )  # fmt: skip
                for index in range(2):
                    call_rows.append(
                        {
                            "run_uid": uid, "call_index": index, "adapter": adapter, "model": model,
                            "input_tokens": 1000, "output_tokens": 200, "cost_micros": cost,
                            "duration_milliseconds": 300, "fallbacks": "[]", "namespace": namespace,
                            "completion_time": completion,
                        }
                    )  # fmt: skip
                names.append((namespace, name))
            await connection.execute(insert(runs), run_rows)
            await connection.execute(insert(run_calls), call_rows)
    print(f"filled {count} runs ({2 * count} calls) in {time.perf_counter() - started:.1f}s")
    if not store.sqlite:
        # A bulk load leaves PostgreSQL without statistics until autovacuum gets to it: what a site's
        # archive, grown run by run, has; without them the planner scans instead of using the indexes.
        async with store.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql("ANALYZE")
    await store.close()
    return names


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return (
        f"n={len(ordered)} mean={statistics.fmean(ordered):.1f} P50={at(0.50):.1f} P95={at(0.95):.1f} "
        f"P99={at(0.99):.1f} max={ordered[-1]:.1f} ms"
    )


async def load(
    base: str, names: list[tuple[str, str]], clients: int, requests: int, seed: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"list": [], "detail": [], "cost": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        # A cursor 10 pages deep, to page on from.
        cursor = None
        for _ in range(10):
            page = (
                await http.get("/v1/runs", params={"limit": 50, **({"cursor": cursor} if cursor else {})})
            ).json()
            cursor = page["nextCursor"]

        async def timed(kind: str, path: str, params: dict[str, Any]) -> None:
            started = time.perf_counter()
            response = await http.get(path, params=params)
            timings[kind].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, params, response.text[:300])

        async def client(number: int) -> None:
            rng = random.Random(seed * 1000 + number)
            for i in range(requests):
                shape = i % 3
                if shape == 0:
                    await timed("list", "/v1/runs", {"limit": 50})
                elif shape == 1:
                    await timed("list", "/v1/runs", {"limit": 50, "namespace": rng.choice(NAMESPACES)})
                else:
                    await timed("list", "/v1/runs", {"limit": 50, "cursor": cursor})
                namespace, name = rng.choice(names)
                await timed("detail", f"/v1/runs/{namespace}/{name}", {})
                group = rng.choice(["team", "user", "model", "adapter"])
                if rng.random() < 0.25:
                    params = {"groupBy": group, "from": moment(60 * 86400), "to": moment(90 * 86400)}
                else:
                    day = rng.randrange(83)
                    params = {
                        "groupBy": group,
                        "namespace": rng.choice(NAMESPACES),
                        "from": moment(day * 86400),
                        "to": moment((day + 7) * 86400),
                    }
                await timed("cost", "/v1/costs", params)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return timings


def serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JESUS_API_CURSOR_KEY": "bench-cursor-key-0123456789"}
    command = [sys.executable, "-m", "jesus.cli", "api", "--local", "--database", url, "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            if server.poll() is not None:
                raise SystemExit(f"jesus api exited; its log: {log}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("jesus api did not answer /healthz in 30 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="of each kind, per client")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-read-api-"))
    folder.chmod(0o755)  # as root, PostgreSQL runs as its own account, which must reach its data folder
    postgres = None
    try:
        if args.database == "sqlite":
            url = f"sqlite:///{folder / 'archive.db'}"
        else:
            postgres = PostgresServer(folder / "postgres")
            postgres.start()
            url = postgres.create_database()
        names = asyncio.run(fill(url, args.runs, args.seed))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = folder / "api.log"
        server = serve(url, port, log)
        try:
            asyncio.run(wait_ready(base, server, log))
            print(
                f"{args.database}: {args.runs} runs, {args.clients} clients, "
                f"{args.requests} requests of each kind each"
            )
            started = time.perf_counter()
            timings = asyncio.run(load(base, names, args.clients, args.requests, args.seed))
            elapsed = time.perf_counter() - started
            total = sum(len(t) for t in timings.values())
            print(f"{total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s)")
            for kind, samples in timings.items():
                print(f"  {kind:<7}{percentiles(samples)}")
        finally:
            server.terminate()
            server.wait(10)
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
