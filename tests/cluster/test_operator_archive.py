"""The operator's archive against a real API server and a real PostgreSQL: a run with hostile text is
archived as the API server holds it (NUL as U+FFFD), a run that finishes while the database is down
finishes all the same, says ArchivePending, and is archived once the database is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.postgres_server import PostgresServer, running_postgres
from tests.builders.routes import failover_route
from tests.cluster.harness import OperatorWorld, operator_world, wait_for

from jesus.devcluster import ControlPlane
from jesus.records import RecordStore, database_url
from jesus.records.schema import audit_log, runs

OBJECTS = [
    answering_adapter("steady", replies=20),
    failover_route("simple", "steady"),
    team_budget("archive", "archive", "10.00"),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> str:
    return postgres.create_database()


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, database: str
) -> Iterator[OperatorWorld]:
    lean = {"JESUS_REDACTION_NAMES": "false"}
    with operator_world(
        control_plane,
        tmp_path_factory.mktemp("archive"),
        "archive",
        OBJECTS,
        runner_environment=lean,
        operator_args=("--archive-database", database),
    ) as world:
        yield world


def archived(world: OperatorWorld, name: str) -> tuple[str, str] | None:
    for c in world.run_status(name).get("conditions", []):
        if c["type"] == "Archived":
            return c["status"], c["reason"]
    return None


async def archived_row(url: str, uid: str) -> tuple[dict[str, Any] | None, list[str]]:
    store = RecordStore(database_url(url))
    try:
        async with store.engine.connect() as connection:
            record = (await connection.execute(select(runs.c.record).where(runs.c.uid == uid))).scalar()
            actions = (
                await connection.execute(
                    select(audit_log.c.action).where(audit_log.c.run_uid == uid).order_by(audit_log.c.id)
                )
            ).scalars()
            found = list(actions)
        assert (await store.verify()).broken is None
        return (json.loads(record) if record else None), found
    finally:
        await store.close()


def uid_of(world: OperatorWorld, name: str) -> str:
    listing = world.plane.kubectl("get", "-n", world.namespace, "agentrun", name, "-o", "json").stdout
    return str(json.loads(listing)["metadata"]["uid"])


def test_a_run_with_hostile_text_is_archived_as_the_cluster_holds_it(
    world: OperatorWorld, database: str
) -> None:
    run = hello_run("hostile", team="archive", route_name="simple", timeout_seconds=300)
    hostile = "Say hi.\x00 ✓ ünïcode 🚀 '\"; DROP TABLE runs; -- " + "x" * 20_000
    run["spec"]["task"]["instructions"] = hostile
    run["metadata"]["labels"] = {"note": "odd"}
    world.apply(run)
    world.wait_phase("hostile", "Succeeded", "Failed", timeout=180)
    wait_for(lambda: archived(world, "hostile") == ("True", "Archived"), timeout=60, what="Archived",
             describe=world.describe)  # fmt: skip
    record, actions = asyncio.run(archived_row(database, uid_of(world, "hostile")))
    assert record is not None
    assert record["spec"]["task"]["instructions"] == hostile.replace("\x00", "\ufffd")
    assert record["metadata"]["labels"] == {"note": "odd"}
    assert actions == ["admit", "settle", "archive"]


def test_a_database_away_delays_the_record_not_the_run(
    world: OperatorWorld, postgres: PostgresServer, database: str
) -> None:
    postgres.stop()
    try:
        world.apply(hello_run("while-away", team="archive", route_name="simple", timeout_seconds=300))
        status = world.wait_phase("while-away", "Succeeded", timeout=180)
        assert status["costMicros"] > 0
        wait_for(
            lambda: archived(world, "while-away") == ("False", "ArchivePending"),
            timeout=90,
            what="Archived=False ArchivePending while the database is down",
            describe=world.describe,
        )
    finally:
        postgres.start()
    wait_for(
        lambda: archived(world, "while-away") == ("True", "Archived"),
        timeout=120,
        what="Archived=True once the database is back",
        describe=world.describe,
    )
    record, actions = asyncio.run(archived_row(database, uid_of(world, "while-away")))
    assert record is not None and record["status"]["phase"] == "Succeeded"
    assert actions.count("archive") == 1 and actions.count("settle") == 1
