"""Short-term memory in the operator, on both databases: an archived run's reflection (read from its
artifact, digest checked) becomes lessons, a later run of the team is offered them, and whatever the
pod wrote in a bad shape, with a lying digest or while the archive is away teaches nothing or waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.builders.records import finished_run

from jesus.api.objects import content_digest
from jesus.controllers.archive import Archiver
from jesus.controllers.memory import REFLECTION_ARTIFACT, ShortTermMemory
from jesus.controllers.metrics import OperatorMetrics
from jesus.logic.lessons import lesson_id
from jesus.records import RecordStore, StoreUnavailableError
from jesus.records.lessons import LessonArchive

TEAM = "ml"
T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
TEXT = "Quote the report's own figures."


def reflection(*, candidates: tuple[str, ...] = (TEXT,), applied: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "passed": True,
        "failed": [],
        "reflection": {
            "goal": "Summarise the report.",
            "outcome": "met",
            "evidence": ["artifact:final-answer.md"],
            "wentWrong": [],
            "escalation": {"needed": False, "why": "a summary"},
            "lessons": {
                "offered": list(applied),
                "applied": [{"id": i, "outcome": "it held"} for i in applied],
            },
            "lessonCandidates": [{"text": t, "evidence": ["artifact:final-answer.md"]} for t in candidates],
            "cost": {"tokens": 120, "costMicros": 140, "withinLimits": True},
        },
    }


class Store:
    """An artifact store the operator reads: what pods uploaded, by URI; it checks digests as the real
    reader does, and counts its reads."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads = 0

    def put(self, uri: str, content: bytes) -> dict[str, Any]:
        self.objects[uri] = content
        return {"name": uri.rsplit("/", 1)[-1], "uri": uri, "digest": content_digest(content)}

    async def read(self, entry: Mapping[str, Any], limit: int) -> bytes:
        self.reads += 1
        content = self.objects.get(entry["uri"])
        if content is None:
            raise FileNotFoundError(f"{entry['uri']} is not in the store")
        if len(content) > limit:
            raise ValueError(f"{entry['uri']} is over {limit} bytes")
        if content_digest(content) != entry["digest"]:
            raise ValueError(f"{entry['uri']} has another digest than {entry['digest']}")
        return content


def run_with(
    name: str, block: Any, store: Store, *, reflected: str = "True", digest: str | None = None
) -> dict[str, Any]:
    """A finished run of team ml whose status lists its reflection.json (and final answer)."""
    run = finished_run(name, namespace="team-ml")
    run["spec"]["owner"]["team"] = TEAM
    content = block if isinstance(block, bytes) else json.dumps(block).encode()
    entry = store.put(f"s3://runs/team-ml/{name}/{REFLECTION_ARTIFACT}", content)
    if digest is not None:
        entry["digest"] = digest
    answer = store.put(f"s3://runs/team-ml/{name}/final-answer.md", b"12 of 15 closed.")
    run["status"]["artifacts"] = [answer, entry]
    run["status"]["conditions"].append(
        {"type": "Reflected", "status": reflected, "reason": "ChecklistPassed", "message": "ok",
         "lastTransitionTime": "2026-11-30T10:00:09Z"}
    )  # fmt: skip
    return run


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def memory_on(store: RecordStore, artifacts: Store, clock: Clock | None = None) -> ShortTermMemory:
    return ShortTermMemory(
        LessonArchive(store), clock or Clock(), artifacts.read, OperatorMetrics(CollectorRegistry())
    )


def learned(memory: ShortTermMemory, result: str) -> float:
    assert memory.metrics is not None
    value = memory.metrics.registry.get_sample_value("jesus_lessons_learned_total", {"result": result})
    return value or 0.0


async def test_a_runs_candidate_is_offered_to_the_teams_later_runs_and_their_reuses_count(
    store: RecordStore,
) -> None:
    artifacts = Store()
    memory = memory_on(store, artifacts)
    assert await memory.lessons_for(TEAM) == []
    await memory.learn(run_with("r1", reflection(), artifacts))
    lesson = lesson_id(TEAM, TEXT)
    (offered,) = await memory.lessons_for(TEAM)  # the cache was refreshed: a run taught something
    assert offered.metadata.name == lesson and offered.spec.memory == "ShortTerm"
    (origin,) = offered.spec.evidence
    assert [a.name for a in origin.artifacts or []] == ["final-answer.md"]
    assert await memory.lessons_for("web") == []
    for name in ("r2", "r3", "r3", "r4"):  # r3 archived twice (a restart): one reuse
        await memory.learn(run_with(name, reflection(candidates=(), applied=(lesson,)), artifacts))
    (offered,) = await memory.lessons_for(TEAM)
    assert [e.run for e in offered.spec.evidence if e.role == "Reuse"] == ["r2", "r3", "r4"]
    assert learned(memory, "learned") == 5


@pytest.mark.parametrize(
    ("block", "digest", "result", "logged"),
    [
        (b"\x00not json", None, "unreadable", "reflection.json: "),
        (b"x" * (300 * 1024), None, "unreadable", "is over 262144 bytes"),
        (reflection(), "sha256:" + "00" * 32, "unreadable", "has another digest"),
        ({"passed": True, "reflection": {"lessonCandidates": [{"text": TEXT}]}}, None, "invalid", "goal"),
        ([reflection()], None, "invalid", "not LAW-REFLECT-001"),
    ],
)
async def test_a_reflection_the_pod_wrote_wrong_teaches_nothing_and_is_counted(
    store: RecordStore,
    caplog: pytest.LogCaptureFixture,
    block: Any,
    digest: str | None,
    result: str,
    logged: str,
) -> None:
    artifacts = Store()
    memory = memory_on(store, artifacts)
    await memory.learn(run_with("r1", block, artifacts, digest=digest))
    assert await LessonArchive(store).lessons() == []
    assert learned(memory, result) == 1
    assert logged in caplog.text and "run=team-ml/r1" in caplog.text


async def test_a_reflection_that_failed_or_is_not_listed_is_not_read(store: RecordStore) -> None:
    artifacts = Store()
    memory = memory_on(store, artifacts)
    await memory.learn(run_with("r1", reflection(), artifacts, reflected="False"))
    assert artifacts.reads == 0
    unlisted = run_with("r2", reflection(), artifacts)
    unlisted["status"]["artifacts"] = unlisted["status"]["artifacts"][:1]
    await memory.learn(unlisted)
    assert artifacts.reads == 0 and learned(memory, "missing") == 1
    assert await LessonArchive(store).lessons() == []


async def test_lessons_another_writer_records_are_offered_once_the_cache_is_old(store: RecordStore) -> None:
    artifacts, clock = Store(), Clock()
    memory = memory_on(store, artifacts, clock)
    assert await memory.lessons_for(TEAM) == []
    # `jesus lessons record` (or another operator) writes to the same archive.
    other = memory_on(store, artifacts)
    await other.learn(run_with("r1", reflection(), artifacts))
    clock.now += timedelta(seconds=29)
    assert await memory.lessons_for(TEAM) == []
    clock.now += timedelta(seconds=1)
    assert [lesson.spec.text for lesson in await memory.lessons_for(TEAM)] == [TEXT]


async def test_the_archive_away_offers_what_was_read_and_the_writer_learns_once_it_is_back(
    store: RecordStore, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts, clock = Store(), Clock()
    memory = memory_on(store, artifacts, clock)
    await memory.learn(run_with("r1", reflection(), artifacts))
    assert len(await memory.lessons_for(TEAM)) == 1

    async def away(*_: object) -> Any:
        raise StoreUnavailableError("the archive is away")

    memory.archive.lessons = away  # type: ignore[method-assign]
    clock.now += timedelta(seconds=60)
    assert len(await memory.lessons_for(TEAM)) == 1  # what was last read; the run is not held up
    assert "Failed to read short-term lessons" in caplog.text
    # A run archived while recording fails is written again by the archiver, and learned from once.
    archive = LessonArchive(store)
    record = archive.record
    failures = [StoreUnavailableError("the archive is away")]

    async def flaky(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await record(*args)

    memory.archive = LessonArchive(store)
    memory.archive.record = flaky  # type: ignore[method-assign]
    archiver = Archiver(store, clock, memory.metrics, learn=memory.learn, retry_delays=(0.01,))
    lesson = lesson_id(TEAM, TEXT)
    archiver.offer_run(run_with("r2", reflection(candidates=(), applied=(lesson,)), artifacts))
    archiver.start()
    try:
        for _ in range(500):
            if not archiver.pending:
                break
            await asyncio.sleep(0.01)
    finally:
        task, archiver._task = archiver._task, None
        assert task is not None
        task.cancel()
    assert archiver.pending == 0 and failures == []
    (stored,) = await archive.lessons(TEAM)
    assert [e.run for e in stored.spec.evidence] == ["r1", "r2"]
