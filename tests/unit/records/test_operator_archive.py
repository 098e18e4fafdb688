"""The operator's archive writer with the real reconcile (an in-memory API server) and a real database:
a finished run is archived once with its decisions, marked Archived, and a database that is away delays
the record without blocking the run, which is archived when it comes back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.cluster import FakeKube, operator_context, sync_cache
from tests.builders.postgres_server import PostgresServer
from tests.builders.records import finished_run
from tests.builders.routes import route_policy

from jesus.controllers.agentrun import reconcile_run
from jesus.controllers.app import open_archive
from jesus.controllers.archive import Archiver
from jesus.controllers.metrics import OperatorMetrics
from jesus.logic.records import RunRecord
from jesus.logic.runs import summarize_record
from jesus.policy.decision import Decision, PolicyInput
from jesus.records import RecordRefusedError, RecordStore, StoreUnavailableError, database_url
from jesus.records.schema import audit_log, runs
from jesus.records.upgrade import current_revision

NS = "team"
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


class Engine:
    name = "fake"

    def __init__(self, allow: bool = True) -> None:
        self.allow = allow

    async def decide(self, policy_input: PolicyInput) -> Decision:
        return Decision(
            allow=self.allow, reasons=() if self.allow else ("too dear",), warnings=(), engine="fake"
        )


class World:
    """One namespace, one run, the operator over it with an archiver on `store`."""

    def __init__(
        self, store: RecordStore, *, allow: bool = True, retry_delays: tuple[float, ...] = (0.05,)
    ) -> None:
        self.kube = FakeKube()
        self.context = operator_context(self.kube, Engine(allow), lambda: NOW)
        self.metrics = OperatorMetrics(CollectorRegistry())
        self.archiver = Archiver(store, lambda: NOW, self.metrics, retry_delays=(0.05,))
        self.context.archiver = self.archiver
        for obj in (scripted_adapter(namespace=NS), route_policy(namespace=NS), budget(namespace=NS)):
            self.kube.put(obj)
        self.kube.put(agent_run(namespace=NS))

    async def reconcile(self) -> dict[str, Any]:
        sync_cache(self.context, self.kube)
        await reconcile_run(self.context, NS, "run")
        found = self.kube.find("AgentRun", NS, "run")
        assert found is not None
        status: dict[str, Any] = found["status"]
        return status

    async def finish(self) -> dict[str, Any]:
        job = (await self.reconcile())["attempts"][0]["jobName"]
        found = self.kube.find("Job", NS, job)
        assert found is not None
        found["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        self.kube.put(found)
        call = {"adapter": f"{NS}/scripted", "model": "scripted-1", "inputTokens": 10, "costMicros": 120_000}
        message = summarize_record({"outcome": "Succeeded", "costMicros": 120_000, "calls": [call]})
        self.kube.put(
            {
                "kind": "Pod",
                "metadata": {"name": f"{job}-pod", "namespace": NS, "labels": {"job-name": job}},
                "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
            }
        )
        return await self.reconcile()


def archived_condition(status: dict[str, Any]) -> tuple[str, str] | None:
    found = [c for c in status.get("conditions", []) if c["type"] == "Archived"]
    return (found[0]["status"], found[0]["reason"]) if found else None


async def audit_actions(store: RecordStore) -> list[str]:
    async with store.engine.connect() as connection:
        return list((await connection.execute(select(audit_log.c.action).order_by(audit_log.c.id))).scalars())


async def test_a_finished_run_is_archived_once_with_its_decisions_and_marked(store: RecordStore) -> None:
    world = World(store)
    status = await world.finish()
    assert status["phase"] == "Succeeded" and archived_condition(status) is None
    assert world.archiver.pending == 3  # the admit and settle decisions, and the run
    await world.archiver.drain()
    status = await world.reconcile()
    assert archived_condition(status) == ("True", "Archived")
    assert world.archiver.pending == 0  # marked: not offered again
    assert await store.count_runs() == 1
    # Live decisions first; the archive write's own history found them logged and added only itself.
    assert await audit_actions(store) == ["admit", "settle", "archive"]
    async with store.engine.connect() as connection:
        row = (await connection.execute(select(runs))).one()
    assert (row.phase, row.cost_micros, row.namespace, row.name) == ("Succeeded", 120_000, NS, "run")
    assert '"type":"Archived"' not in row.record
    assert (await store.verify()).broken is None
    assert world.metrics.archive_writes.labels("archived")._value.get() == 1


async def test_a_run_archived_before_a_restart_is_not_written_twice(store: RecordStore) -> None:
    world = World(store)
    await world.finish()
    await world.archiver.drain()
    # A new operator (nothing in memory) whose predecessor died before marking the run.
    world.archiver = world.context.archiver = Archiver(store, lambda: NOW, world.metrics)
    status = await world.reconcile()
    assert archived_condition(status) is None and world.archiver.pending == 1
    await world.archiver.drain()
    assert world.metrics.archive_writes.labels("duplicate")._value.get() == 1
    assert archived_condition(await world.reconcile()) == ("True", "Archived")
    assert await store.count_runs() == 1
    assert await audit_actions(store) == ["admit", "settle", "archive"]


async def test_a_denied_run_is_archived_with_its_denial(store: RecordStore) -> None:
    world = World(store, allow=False)
    assert (await world.reconcile())["phase"] == "Denied"
    await world.archiver.drain()
    assert await audit_actions(store) == ["deny", "archive"]
    assert archived_condition(await world.reconcile()) == ("True", "Archived")


async def test_a_database_away_delays_the_record_and_says_so_then_it_is_archived(
    postgres: PostgresServer,
) -> None:
    store = RecordStore(database_url(postgres.create_database()), busy_timeout_seconds=1)
    await store.migrate()
    world = World(store)
    writer = asyncio.create_task(world.archiver.run())
    try:
        postgres.stop()
        status = await world.finish()  # the run finishes; nothing waits for the database
        assert status["phase"] == "Succeeded"
        for _ in range(200):
            if world.archiver.error is not None:
                break
            await asyncio.sleep(0.05)
        assert world.archiver.error is not None and f"127.0.0.1:{postgres.port}" in world.archiver.error
        status = await world.reconcile()
        assert archived_condition(status) == ("False", "ArchivePending")
        assert world.metrics.archive_pending._value.get() == world.archiver.pending >= 1
        assert world.metrics.archive_writes.labels("failed")._value.get() >= 1
        postgres.start()
        for _ in range(400):
            if world.archiver.pending == 0:
                break
            await asyncio.sleep(0.05)
        assert world.archiver.pending == 0 and world.archiver.error is None
        assert archived_condition(await world.reconcile()) == ("True", "Archived")
        assert await store.count_runs() == 1
        assert (await store.verify()).broken is None
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        if not (postgres.data / "postmaster.pid").exists():
            postgres.start()
        await store.close()


async def test_without_an_archive_a_finished_run_has_no_archived_condition(store: RecordStore) -> None:
    world = World(store)
    world.context.archiver = None
    status = await world.finish()
    assert status["phase"] == "Succeeded" and archived_condition(status) is None
    assert world.archiver.pending == 0


async def test_a_run_the_database_refuses_is_logged_and_the_next_one_is_archived(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = finished_run("refused"), finished_run("fine")
    archiver = Archiver(store, lambda: NOW)
    real = store.archive_run

    async def refuse_first(record: RunRecord, history: Any, now: str) -> bool:
        if record.name == "refused":
            raise RecordRefusedError("refused AgentRun team-a/refused: value too long")
        return await real(record, history, now)

    monkeypatch.setattr(store, "archive_run", refuse_first)
    archiver.offer_run(first)
    archiver.offer_run(second)
    await archiver.drain()
    assert archiver.pending == 0
    assert archiver.archived == {second["metadata"]["uid"]}
    assert await store.count_runs() == 1


async def test_the_operator_opens_the_archive_migrated_and_gives_up_on_one_that_never_comes(
    database: str, tmp_path: Path
) -> None:
    context = operator_context(FakeKube(), Engine(), lambda: NOW)
    archiver = await open_archive(database, context, retry_delays=(0.01,))
    try:
        assert await current_revision(archiver.store.engine) == "0004"
    finally:
        await archiver.stop()
    missing = f"sqlite:///{tmp_path / 'no-such-folder' / 'archive.db'}"
    with pytest.raises(StoreUnavailableError, match="failed to migrate the archive sqlite"):
        await open_archive(missing, context, retry_delays=(0.01, 0.01))


async def test_a_run_is_offered_its_teams_short_term_lessons_from_the_archive(store: RecordStore) -> None:
    from tests.unit.records.test_memory import reflection

    from jesus.controllers.memory import ShortTermMemory
    from jesus.logic.lessons import RunOrigin, learn_from_reflection
    from jesus.records.lessons import LessonArchive

    archive = LessonArchive(store)
    run = agent_run(namespace=NS)
    team = run["spec"]["owner"]["team"]
    for owner, text in ((team, "Quote the report's own figures."), ("someone-else", "Not yours.")):
        block = reflection(candidates=(text,))
        await archive.record(learn_from_reflection(RunOrigin("earlier", NS, owner, []), block), "T")
    world = World(store)
    world.context.memory = ShortTermMemory(archive, lambda: NOW, None)
    job_name = (await world.reconcile())["attempts"][0]["jobName"]
    job = world.kube.find("Job", NS, job_name)
    assert job is not None
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    offered = json.loads(env["JESUS_LESSONS"])
    assert [lesson["text"] for lesson in offered] == ["Quote the report's own figures."]


async def test_a_short_term_lesson_the_policy_withholds_is_not_offered(
    store: RecordStore, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.unit.records.test_memory import reflection

    from jesus.controllers.memory import ShortTermMemory
    from jesus.logic.lessons import LessonVerdict, RunOrigin, learn_from_reflection
    from jesus.records.lessons import LessonArchive

    class Reviewed:
        async def verdict(self, lesson: Any) -> LessonVerdict:
            return LessonVerdict(lesson.spec.memory == "LongTerm", ("only reviewed lessons",))

    archive = LessonArchive(store)
    team = agent_run(namespace=NS)["spec"]["owner"]["team"]
    block = reflection(candidates=("Quote the report's own figures.",))
    await archive.record(learn_from_reflection(RunOrigin("earlier", NS, team, []), block), "T")
    world = World(store)
    world.context.memory = ShortTermMemory(archive, lambda: NOW, None)
    world.context.lesson_policy = Reviewed()
    caplog.set_level("INFO", logger="jesus")
    job_name = (await world.reconcile())["attempts"][0]["jobName"]
    job = world.kube.find("Job", NS, job_name)
    assert job is not None
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "JESUS_LESSONS" not in env
    assert "Withheld lessons run=team/run reasons=lesson l-" in caplog.text
