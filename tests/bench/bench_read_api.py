"""The read API's latency over a large archive: P50/P95/P99 of the list, detail and cost queries with 50
clients at once, through HTTP to a `jesus api` process.

Run: .venv/bin/python -m tests.bench.bench_read_api [--runs 100000] [--clients 50] [--requests 20]
     [--database sqlite|postgresql] [--answer-seconds 2] [--workers 1]

The archive is filled by bulk insert (one record built by `build_run_record`, copied with other names,
UIDs, namespaces, teams, users, models and completion times; two calls each): 20 namespaces, 50 users,
4 models over 2 adapters, completions spread over 90 days. `jesus api --local` serves it (local mode, so
no review: in a cluster a caller's reviews are cached, one per 10 s; `--answer-seconds 0` turns its
answer cache off). Each of `clients` clients sends `requests` requests of each kind in turn, one at a
time:

- list: /v1/runs?limit=50, alternately the first page everywhere, the first page of one namespace, and
  the page after a cursor taken 10 pages deep;
- detail: /v1/runs/NS/NAME of a random run;
- cost: /v1/costs?groupBy=team|user|model|adapter over a random 7-day window of one namespace, or over
  30 days everywhere (one in four).

The clients run on the same machine as the server (and the database) and share its CPUs: each is one
keep-alive HTTP/1.1 connection driven by a few lines over asyncio streams, not httpx, whose 2.7 ms of CPU
a request (measured against /healthz) made the clients, not the server, the bound. The CPU seconds the
server's processes and the clients spent per request are printed beside the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from urllib.parse import urlencode

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
        # Autovacuum would also have set the visibility map, which lets the cost sums read the index alone.
        async with store.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql("VACUUM ANALYZE")
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


class Connection:
    """One keep-alive HTTP/1.1 connection: GET, read the status, the headers and a sized body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, params: dict[str, Any]) -> tuple[int, bytes]:
        target = f"{path}?{urlencode(params)}" if params else path
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                raise RuntimeError(f"{target}: a chunked response; the bench reads sized bodies only")
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def load(
    port: int, names: list[tuple[str, str]], clients: int, requests: int, seed: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"list": [], "detail": [], "cost": []}
    # The cost queries' two shapes apart as well (printed under "cost", not counted twice).
    shapes: dict[str, list[float]] = {"cost, one namespace's week": [], "cost, 30 days everywhere": []}
    first = await Connection.open(port)
    # A cursor 10 pages deep, to page on from.
    cursor = None
    for _ in range(10):
        status, body = await first.get("/v1/runs", {"limit": 50, **({"cursor": cursor} if cursor else {})})
        assert status == 200, body[:300]
        cursor = json.loads(body)["nextCursor"]
    first.close()

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        connection = await Connection.open(port)

        async def timed(kind: str, path: str, params: dict[str, Any], shape: str | None = None) -> None:
            started = time.perf_counter()
            status, body = await connection.get(path, params)
            timings[kind].append((time.perf_counter() - started) * 1000)
            if shape is not None:
                shapes[shape].append(timings[kind][-1])
            assert status == 200, (path, params, body[:300])

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
                shape = "cost, 30 days everywhere"
            else:
                shape = "cost, one namespace's week"
                day = rng.randrange(83)
                params = {
                    "groupBy": group,
                    "namespace": rng.choice(NAMESPACES),
                    "from": moment(day * 86400),
                    "to": moment((day + 7) * 86400),
                }
            await timed("cost", "/v1/costs", params, shape)
        connection.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return {**timings, **shapes}


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) of process `pid` and of its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """The CPU time of the server: its process and, with --workers, the workers it started."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for number in child.read_text().split():
            with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
                total += cpu_seconds(int(number))
    return total


def serve(url: str, port: int, log: Path, answer_seconds: float, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JESUS_API_CURSOR_KEY": "bench-cursor-key-0123456789"}
    command = [
        sys.executable, "-m", "jesus.cli", "api", "--local", "--database", url, "--port", str(port),
        "--answer-seconds", str(answer_seconds),
    ]  # fmt: skip
    if workers != 1:
        command += ["--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(1200):  # a loaded machine starts three processes slowly
            if server.poll() is not None:
                raise SystemExit(f"jesus api exited; its log: {log}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("jesus api did not answer /healthz in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="of each kind, per client")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--answer-seconds", type=float, default=2.0, help="jesus api --answer-seconds")
    parser.add_argument("--workers", type=int, default=1, help="jesus api --workers")
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
        server = serve(url, port, log, args.answer_seconds, args.workers)
        try:
            asyncio.run(wait_ready(base, server, log))
            print(
                f"{args.database}: {args.runs} runs, {args.clients} clients, "
                f"{args.requests} requests of each kind each, answer cache {args.answer_seconds:g} s, "
                f"{args.workers} worker(s); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            # PostgreSQL's processes (the postmaster's children: a backend per connection) apart.
            database_pid = None if postgres is None else postgres.postmaster_pid()
            database_before = 0.0 if database_pid is None else server_cpu_seconds(database_pid)
            server_before, client_before = server_cpu_seconds(server.pid), time.process_time()
            started = time.perf_counter()
            timings = asyncio.run(load(port, names, args.clients, args.requests, args.seed))
            elapsed = time.perf_counter() - started
            server_cpu = server_cpu_seconds(server.pid) - server_before
            client_cpu = time.process_time() - client_before
            total = sum(len(timings[kind]) for kind in ("list", "detail", "cost"))
            database = ""
            if database_pid is not None:
                database_cpu = server_cpu_seconds(database_pid) - database_before
                database = f", PostgreSQL {1000 * database_cpu / total:.2f} ms"
            print(
                f"{total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s); CPU a request: server "
                f"{1000 * server_cpu / total:.2f} ms, clients {1000 * client_cpu / total:.2f} ms{database}; "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            for kind, samples in timings.items():
                if kind.startswith("cost, "):
                    print(f"    {kind}: {percentiles(samples)}")
                else:
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
