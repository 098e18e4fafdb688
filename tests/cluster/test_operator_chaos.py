"""Chaos: two active operator replicas, each holding shards of the runs (docs/scale.md), one of them
killed at random points while 100 runs go through. In the end every run has finished exactly once: one
Job each, every runner pod run once, and the Budget's spending is exactly the sum of the runs' costs with
nothing left held. The archive (SQLite, the embedded default, written by both replicas) holds every run
exactly once, with its cost, and its audit chain is intact with one settle and one archive row a run."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.routes import failover_route
from tests.cluster.harness import OperatorWorld, Process, apply, get, operator_world, wait_for

from jesus.devcluster import ControlPlane
from jesus.devcluster.controlplane import free_port
from jesus.records import RecordStore, database_url
from jesus.records.schema import audit_log, runs
from jesus.records.store import Verification

RUNS = 100
OBJECTS = [
    answering_adapter("steady", replies=RUNS + 20),
    failover_route("simple", "steady"),
    team_budget("chaos", "chaos", "1000.00"),
]


SHARDS = 4
LEASES = "chaos-leases"


@pytest.fixture(scope="module")
def pair(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorWorld, Process]]:
    # Runners redact with patterns only, and run without coverage: loading spaCy, or tracing every line,
    # in each of a hundred runner processes would cost minutes of the two cores, and what this test
    # measures is the operator's exactly-once accounting (the other cluster tests cover the runner).
    lean = {"JESUS_REDACTION_NAMES": "false", "COVERAGE_PROCESS_CONFIG": "", "COVERAGE_PROCESS_START": ""}
    workdir = tmp_path_factory.mktemp("chaos")
    control_plane.kubectl("create", "namespace", LEASES, check=False)
    with operator_world(
        control_plane,
        workdir,
        "chaos",
        OBJECTS,
        runner_environment=lean,
        operator_args=(
            "--archive-database",
            archive_url(workdir),
            *("--shards", str(SHARDS), "--identity", "chaos-a", "--lease-namespace", LEASES),
        ),
    ) as world:
        second = replica(world, "chaos-b")
        second.start()
        try:
            wait_for(
                lambda: set(holders(control_plane).values()) == {"chaos-a", "chaos-b"},
                timeout=60,
                what="both replicas to hold shards",
                describe=lambda: f"{holders(control_plane)}\n{world.operator.tail()}\n{second.tail()}",
            )
            yield world, second
        finally:
            second.stop()
    control_plane.kubectl("delete", "namespace", LEASES, "--wait=false", check=False)


def holders(plane: ControlPlane) -> dict[str, str]:
    """Shard Lease name -> the replica holding it."""
    leases = json.loads(plane.kubectl("get", "leases", "-n", LEASES, "-o", "json").stdout)["items"]
    return {
        lease["metadata"]["name"]: lease["spec"].get("holderIdentity") or ""
        for lease in leases
        if lease["metadata"]["name"].startswith("jesus-operator-shard-")
    }


def replica(world: OperatorWorld, identity: str) -> Process:
    """Another active operator: the same command under another identity and metrics port."""
    command = list(world.operator.command)
    command[command.index("--identity") + 1] = identity
    command[command.index("--metrics-port") + 1] = str(free_port())
    return Process(f"operator {identity}", command, world.operator.env, world.workdir / f"{identity}.log")


def archive_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'archive.db'}"


def archived(world: OperatorWorld) -> int:
    """Runs whose Archived condition is True."""
    listing = json.loads(world.plane.kubectl("get", "-n", world.namespace, "agentruns", "-o", "json").stdout)
    return sum(
        any(
            c["type"] == "Archived" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
        for item in listing["items"]
    )


async def read_archive(url: str) -> tuple[list[tuple[str, str, int]], Counter[tuple[str, str]], Verification]:
    """The archived runs (uid, name, cost), audit actions by (uid, action), and the chain's verification."""
    store = RecordStore(database_url(url))
    try:
        async with store.engine.connect() as connection:
            rows = (await connection.execute(select(runs.c.uid, runs.c.name, runs.c.cost_micros))).all()
            actions = (await connection.execute(select(audit_log.c.run_uid, audit_log.c.action))).all()
        found = [(str(r.uid), str(r.name), int(r.cost_micros)) for r in rows]
        return found, Counter((a.run_uid, a.action) for a in actions), await store.verify()
    finally:
        await store.close()


def phases(world: OperatorWorld) -> Counter[str]:
    listing = world.plane.kubectl("get", "-n", world.namespace, "agentruns", "-o", "json")
    return Counter(
        item.get("status", {}).get("phase", "None") for item in json.loads(listing.stdout)["items"]
    )


def test_killing_either_of_two_active_operators_at_random_charges_every_run_exactly_once(
    pair: tuple[OperatorWorld, Process],
) -> None:
    world, second = pair
    rng = random.Random(20261122)
    # A long timeout: a hundred runner processes queue on two cores, and the Job's deadline counts the wait.
    runs = [
        hello_run(f"chaos-{i:03d}", team="chaos", route_name="simple", timeout_seconds=900)
        for i in range(RUNS)
    ]
    apply(world.plane, world.namespace, *runs)

    replicas = [world.operator, second]
    kills = Counter[str]()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        counts = phases(world)
        if counts["Succeeded"] + counts["Failed"] == RUNS:
            break
        if kills.total() < 12:
            time.sleep(rng.uniform(0.3, 4.0))
            victim = rng.choice(replicas)
            victim.kill()  # SIGKILL: no clean shutdown, whatever was in flight is cut off
            kills[victim.name] += 1
            victim.start()  # under the same identity, as a StatefulSet's pod would come back
        else:
            time.sleep(1)
    counts = phases(world)
    assert counts["Succeeded"] == RUNS, f"{counts}\n{world.describe()}"
    assert kills.total() >= 5 and len(kills) == 2, kills  # each replica killed at least once
    # Both replicas held shards and reconciled runs: the test is of two active operators, not a standby.
    for process in replicas:
        assert "Created runner job" in process.log.read_text(errors="replace"), process.tail()

    listing = json.loads(world.plane.kubectl("get", "-n", world.namespace, "agentruns", "-o", "json").stdout)
    statuses = {item["metadata"]["name"]: item["status"] for item in listing["items"]}
    jobs = json.loads(
        world.plane.kubectl(
            "get", "-n", world.namespace, "jobs", "-l", "jesus.dev/component=runner", "-o", "json"
        ).stdout
    )["items"]
    jobs_per_run = Counter(job["metadata"]["labels"]["jesus.dev/run"] for job in jobs)
    assert set(jobs_per_run) == set(statuses)
    assert max(jobs_per_run.values()) == 1, "a run got a second Job"
    assert all(len(s["attempts"]) == 1 for s in statuses.values())
    assert world.runtime.runtime is not None
    started = Counter(world.runtime.runtime.started)
    assert len(started) == RUNS
    assert max(started.values()) == 1, "a runner pod was run twice"

    costs = sum(int(s["costMicros"]) for s in statuses.values())
    assert all(int(s["costMicros"]) > 0 for s in statuses.values())
    ledger = get(world.plane, world.namespace, "budget", "chaos")
    assert ledger is not None
    assert int(ledger["status"]["spentMicros"]) == costs, "budget charged twice or a charge lost"
    assert int(ledger["status"]["reservedMicros"]) == 0
    assert not ledger["status"].get("reservations")
    assert all(all(r["settled"] for r in s["budgetReservations"]) for s in statuses.values())

    # The archive: every run exactly once, as its status says, however often the operator died.
    deadline = time.monotonic() + 120
    while archived(world) < RUNS and time.monotonic() < deadline:
        time.sleep(1)
    assert archived(world) == RUNS, world.describe()
    uids = {item["metadata"]["name"]: item["metadata"]["uid"] for item in listing["items"]}
    rows, actions, verification = asyncio.run(read_archive(archive_url(world.workdir)))
    assert len(rows) == RUNS
    assert {(uid, name) for uid, name, _ in rows} == {(uid, name) for name, uid in uids.items()}
    assert {name: cost for _, name, cost in rows} == {n: int(s["costMicros"]) for n, s in statuses.items()}
    for uid in uids.values():
        assert (actions[(uid, "archive")], actions[(uid, "settle")], actions[(uid, "admit")]) == (1, 1, 1)
    assert verification.broken is None, verification
