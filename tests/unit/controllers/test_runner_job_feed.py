"""The operator's own watch of runner Jobs: the API server sends runner Jobs only, and the events that can
matter to a run (its Job finished, went away, or was queued, suspended or released by Kueue) queue it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from tests.builders.cluster import FakeKube, operator_context

from jesus.controllers.agentrun.handlers import RUNNER_JOBS, on_runner_job, runner_job_feeds
from jesus.controllers.context import OperatorContext
from jesus.controllers.workqueue import WorkQueue
from jesus.kube import JsonObject
from jesus.logic import manifests, queueing
from jesus.logic.queueing import QueueSettings

NS = "team-a"


class Engine:
    name = "unused"

    async def decide(self, policy_input: object) -> object:
        raise AssertionError("not asked")


def job(
    name: str,
    *,
    finished: bool = False,
    owner: str | None = "run",
    owner_kind: str = "AgentRun",
    labels: Mapping[str, str] = RUNNER_JOBS,
) -> JsonObject:
    owners = [{"kind": owner_kind, "name": owner, "uid": f"uid-{owner}"}] if owner else []
    conditions = [{"type": "Complete", "status": "True"}] if finished else []
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": dict(labels), "ownerReferences": owners},
        "status": {"conditions": conditions},
    }


def context_with_queue(**settings: Any) -> tuple[OperatorContext, WorkQueue]:
    async def never(key: tuple[str, str], body: JsonObject | None) -> float | None:
        raise AssertionError("the queue is not started")

    context = operator_context(FakeKube(), Engine(), lambda: datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    context.settings = dataclasses.replace(context.settings, **settings)
    queue = context.run_queue = WorkQueue(never, workers=1)
    return context, queue


def test_a_finished_or_deleted_runner_job_queues_its_run_and_a_running_one_does_not() -> None:
    context, queue = context_with_queue()
    on_runner_job(context, "MODIFIED", job("running-a1", owner="running"))
    on_runner_job(context, "ADDED", job("added-a1", owner="added"))
    assert queue.known() == frozenset()
    on_runner_job(context, "MODIFIED", job("done-a1", finished=True, owner="done"))
    on_runner_job(context, "DELETED", job("gone-a1", owner="gone"))
    assert queue.known() == {(NS, "done"), (NS, "gone")}


def test_a_queued_job_queues_its_run_on_every_change_only_with_kueue() -> None:
    queued = {**RUNNER_JOBS, queueing.LABEL_QUEUE_NAME: "team-a-interactive"}
    context, queue = context_with_queue()
    on_runner_job(context, "MODIFIED", job("q-a1", owner="q", labels=queued))
    assert queue.known() == frozenset()
    context, queue = context_with_queue(queueing=QueueSettings())
    on_runner_job(context, "MODIFIED", job("q-a1", owner="q", labels=queued))
    assert queue.known() == {(NS, "q")}


def test_careless_jobs_queue_nothing_and_break_nothing() -> None:
    context, queue = context_with_queue()
    on_runner_job(context, "MODIFIED", job("orphan-a1", finished=True, owner=None))
    on_runner_job(context, "MODIFIED", job("other-a1", finished=True, owner="d", owner_kind="Deployment"))
    bare: JsonObject = {"kind": "Job", "metadata": {"name": "bare", "namespace": NS}}
    on_runner_job(context, "DELETED", bare)  # no labels, no status, no owners
    assert queue.known() == frozenset()


class ListWatch(FakeKube):
    """Lists and watches as the API server does: objects with the asked labels only."""

    def __init__(self, jobs: list[JsonObject]) -> None:
        super().__init__()
        self.jobs = jobs
        self.asked: list[tuple[str | None, dict[str, str] | None]] = []
        self.changes: asyncio.Queue[tuple[str, JsonObject]] = asyncio.Queue()

    def _chosen(self, obj: JsonObject, labels: Mapping[str, str] | None) -> bool:
        have = obj["metadata"].get("labels") or {}
        return all(have.get(k) == v for k, v in (labels or {}).items())

    async def list_at(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> tuple[list[JsonObject], str]:
        self.asked.append((namespace, dict(labels) if labels else None))
        return [j for j in self.jobs if self._chosen(j, labels)], "1"

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        while True:
            type_, obj = await self.changes.get()
            if self._chosen(obj, labels):
                yield type_, obj


async def test_the_feed_asks_the_api_server_for_runner_jobs_and_queues_their_runs() -> None:
    other = job("backup", finished=True, owner="nightly", labels={"app": "backup"})
    cluster = ListWatch([job("listed-a1", finished=True, owner="listed"), other])
    context, queue = context_with_queue()
    context.kube = cluster  # type: ignore[assignment]
    context.namespaces = (NS, "team-b")
    feeds = runner_job_feeds(context)
    assert [(f.namespace, f.labels) for f in feeds] == [(NS, RUNNER_JOBS), ("team-b", RUNNER_JOBS)]
    task = asyncio.create_task(feeds[0].run())
    try:
        await asyncio.wait_for(feeds[0].synced.wait(), 5)
        assert queue.known() == {(NS, "listed")}
        cluster.changes.put_nowait(("MODIFIED", {**other, "metadata": {**other["metadata"], "name": "b2"}}))
        cluster.changes.put_nowait(("MODIFIED", job("later-a1", finished=True, owner="later")))
        for _ in range(100):
            if (NS, "later") in queue.known():
                break
            await asyncio.sleep(0.01)
        assert queue.known() == {(NS, "listed"), (NS, "later")}
        assert cluster.asked == [(NS, {manifests.LABEL_COMPONENT: manifests.COMPONENT_RUNNER})]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_without_namespaces_one_feed_watches_every_namespace() -> None:
    context, _ = context_with_queue()
    [feed] = runner_job_feeds(context)
    assert (feed.kind, feed.namespace, feed.labels) == ("Job", None, RUNNER_JOBS)
