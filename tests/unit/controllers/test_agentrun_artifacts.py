"""The operator's part in durable artifacts, on the in-memory API server with a stand-in bucket: each
attempt's Job carries its grant (no credential), only the entries the bucket bears out reach the status
(a Warning Event for the others), a finished run enters the expiry index, and once its retention has
passed (injected clock) its status lists none of its `s3://` artifacts and says so. The sweep loop on an
injected clock. The real bucket: tests/cluster/test_artifacts.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tests.builders.agentrun import agent_run
from tests.builders.manifest import set_field
from tests.unit.controllers.test_agentrun_reconcile import NOW, NS, World, condition

from jesus.api.agentrun import ArtifactRef
from jesus.controllers.artifacts import RetentionSweeper
from jesus.logic.artifacts import ArtifactBucket, ExpiryMarker, UploadGrant, artifact_uri, object_key
from jesus.logic.records import Decision, DecisionAction
from jesus.records.artifacts import ArtifactStoreError, S3Artifacts, Verified

SECRET = "operator-secret-key-" + "s" * 20
UID = "0a0b0c0d-0000-4000-8000-00000000abcd"


class Bucket(S3Artifacts):
    """The operator's store with the bucket's answers stubbed: which keys exist, the expiry index."""

    def __init__(self, clock: Any) -> None:
        super().__init__(ArtifactBucket("http://s3.test", "arts"), "AKID", SECRET, clock=clock)
        self.intact: set[str] = set()
        self.markers: list[tuple[str, str, str, datetime]] = []
        self.down = False
        self.swept: list[datetime] = []
        self.deleted: list[tuple[str, str]] = []

    def verify(self, artifacts: Sequence[ArtifactRef], namespace: str, uid: str, attempt: int) -> Verified:
        if self.down:
            raise ArtifactStoreError("s3://arts/ could not be reached: connection refused")
        kept = tuple(a for a in artifacts if a.uri in self.intact or not a.uri.startswith("s3://"))
        problems = tuple(
            f"artifact {a.name}: {a.uri} is not in the bucket" for a in artifacts if a not in kept
        )
        return Verified(kept, problems)

    def mark_expiry(self, namespace: str, uid: str, name: str, moment: datetime) -> str:
        self.markers.append((namespace, uid, name, moment))
        return "expiries/..."

    def delete_run(self, namespace: str, uid: str) -> int:
        if self.down:
            raise ArtifactStoreError("s3://arts/ could not be reached: connection refused")
        self.deleted.append((namespace, uid))
        return 1

    def sweep(self, now: datetime | None = None, *, limit: int = 100) -> list[ExpiryMarker]:
        assert now is not None
        self.swept.append(now)
        return [
            ExpiryMarker(key="k", moment=m, namespace=ns, uid=uid, name=name)
            for ns, uid, name, m in self.markers
            if m <= now
        ]


def entry(name: str, content: bytes, attempt: int = 1) -> dict[str, Any]:
    from jesus.api.objects import content_digest

    digest = content_digest(content)
    key = object_key(f"runs/{NS}/{UID}/a{attempt}/", digest)
    return {"name": name, "uri": artifact_uri("arts", key), "sizeBytes": len(content), "digest": digest}


def world_with_bucket() -> tuple[World, Bucket]:
    run = set_field(agent_run(namespace=NS), "metadata.uid", UID)
    run["spec"]["artifacts"] = {"retentionDays": 2}
    world = World(run=run)
    bucket = Bucket(lambda: world.now)
    world.context.artifacts = bucket
    return world, bucket


async def test_the_job_carries_a_grant_for_its_attempt_and_no_credential() -> None:
    world, _bucket = world_with_bucket()
    job_name = (await world.reconcile())["attempts"][0]["jobName"]
    job = world.kube.find("Job", NS, job_name)
    assert job is not None
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    grant = UploadGrant.from_json(env["JESUS_ARTIFACT_GRANT"] or "")
    assert grant.prefix == f"runs/{NS}/{UID}/a1/"
    assert grant.fields["x-amz-date"] == "20261122T040000Z"  # the operator's (injected) clock
    # The run's timeout (600 s by default) plus the Job's grace (30 s) and the slack (600 s).
    assert grant.expires == "2026-11-22T04:20:30.000Z"
    assert SECRET not in json.dumps(job)
    assert not [name for name in env if name.startswith(("AWS_", "JESUS_ARTIFACTS_"))]


async def test_only_artifacts_the_bucket_bears_out_reach_the_status_and_the_run_enters_the_index() -> None:
    world, bucket = world_with_bucket()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    honest, ghost = entry("answer.md", b"42"), entry("ghost.md", b"never stored")
    bucket.intact = {honest["uri"]}
    world.now = NOW + timedelta(minutes=5)
    world.finish_job(job, complete=True, record={"outcome": "Succeeded", "artifacts": [honest, ghost]})
    status = await world.reconcile()
    assert status["phase"] == "Succeeded"
    assert status["artifacts"] == [honest]
    warnings = [e for e in world.kube.events if e[1] == "Warning" and e[2] == "ArtifactUnverified"]
    assert [e[3] for e in warnings] == [f"attempt 1: artifact ghost.md: {ghost['uri']} is not in the bucket"]
    assert bucket.markers == [(NS, UID, "run", NOW + timedelta(minutes=5, days=2))]


async def test_an_unreachable_bucket_keeps_the_entries_unchecked_and_says_so() -> None:
    world, bucket = world_with_bucket()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    bucket.down = True
    honest = entry("answer.md", b"42")
    world.finish_job(job, complete=True, record={"outcome": "Succeeded", "artifacts": [honest]})
    status = await world.reconcile()
    assert (status["phase"], status["artifacts"]) == ("Succeeded", [honest])
    [warning] = [e[3] for e in world.kube.events if e[2] == "ArtifactUnverified"]
    assert warning.startswith("attempt 1: artifacts not checked: s3://arts/ could not be reached")


async def test_past_its_retention_a_run_lists_no_stored_artifact_and_says_they_are_deleted() -> None:
    world, bucket = world_with_bucket()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    honest, local = entry("answer.md", b"42"), {"name": "notes.md", "uri": "file:///artifacts/notes.md"}
    bucket.intact = {honest["uri"]}
    world.finish_job(job, complete=True, record={"outcome": "Succeeded", "artifacts": [honest, local]})
    finished = await world.reconcile()
    assert [a["name"] for a in finished["artifacts"]] == ["answer.md", "notes.md"]

    world.now = NOW + timedelta(days=2) - timedelta(seconds=1)
    assert [a["name"] for a in (await world.reconcile())["artifacts"]] == ["answer.md", "notes.md"]
    world.now = NOW + timedelta(days=2)
    bucket.down = True  # not deleted yet: still listed
    assert [a["name"] for a in (await world.reconcile())["artifacts"]] == ["answer.md", "notes.md"]
    assert bucket.deleted == []
    bucket.down = False
    status = await world.reconcile()
    assert bucket.deleted == [(NS, UID)]
    assert status["artifacts"] == [local], "what is not in the bucket is not the sweep's"
    assert condition(status, "ArtifactsDeleted") == (
        "True",
        "RetentionExpired",
        "1 artifact(s) deleted: retention of 2 day(s) ended 2026-11-24T04:00:00Z",
    )
    assert status["phase"] == "Succeeded"


async def test_the_sweeper_deletes_what_is_due_by_its_clock_audits_it_and_wakes_the_run() -> None:
    now = NOW
    bucket = Bucket(lambda: now)
    bucket.markers = [
        (NS, UID, "run", NOW + timedelta(days=1)),
        (NS, "other-uid", "later", NOW + timedelta(days=9)),
    ]
    woken: list[tuple[str, str]] = []
    audited: list[Decision] = []

    async def wake(namespace: str, name: str) -> None:
        woken.append((namespace, name))
        if name == "run":
            raise RuntimeError("the run is gone")  # a missing run does not stop the sweep

    sweeper = RetentionSweeper(bucket, lambda: now, on_expired=wake, audit=audited.extend)
    assert await sweeper.sweep_once() == 0
    now = NOW + timedelta(days=1)
    assert await sweeper.sweep_once() == 1
    assert bucket.swept == [NOW, NOW + timedelta(days=1)]
    assert woken == [(NS, "run")]
    [decision] = audited
    assert (decision.action, decision.namespace, decision.name, decision.uid) == (
        DecisionAction.EXPIRE_ARTIFACTS,
        NS,
        "run",
        UID,
    )
    assert decision.detail == {"expiredAt": "2026-11-23T04:00:00Z", "prefix": f"runs/{NS}/{UID}/"}
    assert decision.at == "2026-11-23T04:00:00Z"
