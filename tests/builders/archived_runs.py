"""Archived runs for the read API's tests: a few teams, users, models and completion times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.builders.records import finished_run

from jesus.logic.records import build_run_record
from jesus.records import RecordStore

NOW = "2026-12-01T00:00:00Z"


@dataclass(frozen=True)
class Archived:
    """What a test wrote: a run's identity and figures."""

    namespace: str
    name: str
    uid: str
    team: str
    user: str
    model: str
    completion: str
    phase: str
    calls: int

    @property
    def cost_micros(self) -> int:
        return 1500 * self.calls


def archived_run(
    name: str,
    *,
    namespace: str = "team-a",
    team: str | None = None,
    user: str = "ada@example.com",
    model: str = "m-small",
    completion: str = "2026-11-30T10:00:09Z",
    phase: str = "Succeeded",
    calls: int = 2,
    uid: str | None = None,
) -> tuple[Archived, dict[str, Any]]:
    """A finished run of `team` (default: the namespace) by `user`, its calls to `model`."""
    obj = finished_run(name, namespace=namespace, phase=phase, calls=calls, uid=uid)
    obj["spec"]["owner"] = {"team": team or namespace, "user": user}
    obj["status"]["completionTime"] = completion
    for call in obj["status"].get("calls") or []:
        call["model"] = model
    facts = Archived(
        namespace, name, obj["metadata"]["uid"], team or namespace, user, model, completion, phase, calls
    )
    return facts, obj


async def archive(store: RecordStore, *runs: tuple[Archived, dict[str, Any]]) -> list[Archived]:
    """Write `runs` to the archive; their facts, in order."""
    for _facts, obj in runs:
        assert await store.archive_run(build_run_record(obj), [], NOW)
    return [facts for facts, _ in runs]


def standard_runs() -> list[tuple[Archived, dict[str, Any]]]:
    """Seven runs in two namespaces: two users, two models, a Failed and a Denied, one minute apart."""
    return [
        archived_run("a1", completion="2026-11-30T10:01:00Z"),
        archived_run("a2", completion="2026-11-30T10:02:00Z", user="bob@example.com"),
        archived_run("a3", completion="2026-11-30T10:03:00Z", model="m-large", calls=3),
        archived_run("a4", completion="2026-11-30T10:04:00Z", phase="Failed", calls=1),
        archived_run("a5", completion="2026-11-30T10:05:00Z", phase="Denied", calls=0),
        archived_run("b1", namespace="team-b", completion="2026-11-30T10:02:30Z", user="eve@example.com"),
        archived_run("b2", namespace="team-b", completion="2026-11-30T10:06:00Z", model="m-large"),
    ]
