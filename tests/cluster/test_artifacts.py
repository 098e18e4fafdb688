"""Durable artifacts against a real S3-compatible server, SeaweedFS's `weed mini` (ADR 0030).

The grant: an attempt's pre-signed POST policy lets its holder write under the attempt's own prefix and
nowhere else, no larger than the cap, not after it expired, not with a forged signature: the S3 server
refuses, not our code. What a pod lists is checked in the bucket: missing, altered, misaddressed,
foreign and inflating entries are left out of the status, with a reason each. The expiry index: a
sweep deletes a run's objects once its retention passed, and nothing of another run's.

And the issue's Done-when, on the real API server with the operator, router and runner as processes: a
run's artifacts are in the bucket with matching digests after its pod is gone; the runner pod's
environment holds no storage credential; an expired run's artifacts are deleted.

These tests sign with the S3 server's own clock (its Date header), not the machine's: the server checks
expiry by its clock. They live in the cluster tier, which runs with the real clock (boto3 signs with it).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import team_budget
from tests.builders.routes import route_policy
from tests.cluster.harness import REPO, operator_world, wait_for

from jesus.api.agentrun import ArtifactRef
from jesus.api.objects import content_digest
from jesus.devcluster import ControlPlane
from jesus.devcluster.s3 import S3Server
from jesus.logic.artifacts import (
    ArtifactBucket,
    UploadGrant,
    artifact_uri,
    attempt_prefix,
    compress,
    object_key,
    sign_upload_grant,
)
from jesus.logic.clock import parse_time
from jesus.records.artifacts import S3Artifacts
from jesus.runner.artifacts import ArtifactUploadError, S3GrantArtifactStore

CLI = [sys.executable, "-m", "jesus.cli", "artifacts"]
NAMESPACE, UID = "team-a", "0f1e2d3c-0000-4000-8000-000000000001"
OTHER_UID = "0f1e2d3c-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One `weed mini` for the module, on free loopback ports."""
    server = S3Server(tmp_path_factory.mktemp("weed"), die_with_parent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def server_now(server: S3Server) -> datetime:
    """The S3 server's clock, which is the one that judges a grant's expiry."""
    return parsedate_to_datetime(httpx.get(server.endpoint).headers["date"])


def open_store(server: S3Server, bucket: str, **target: int) -> S3Artifacts:
    store = S3Artifacts(
        ArtifactBucket(server.endpoint, bucket, **target),
        server.credential.access_key,
        server.credential.secret_key,
        clock=lambda: server_now(server),
    )
    store.ensure_bucket()
    return store


def post(grant: UploadGrant, key: str, blob: bytes, fields: dict[str, str] | None = None) -> httpx.Response:
    """What a hostile pod can do with its grant: post any key and any bytes."""
    return httpx.post(
        grant.url, data={"key": key, **(fields or dict(grant.fields))}, files={"file": ("f", blob)}
    )


def stored_keys(store: S3Artifacts, prefix: str = "") -> set[str]:
    response = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return {item["Key"] for item in response.get("Contents", [])}


# --- the grant, enforced by the S3 server -----------------------------------------------------------


def test_a_grant_writes_its_own_prefix_and_the_server_refuses_everything_else(s3: S3Server) -> None:
    store = open_store(s3, "grants", max_object_bytes=4096)
    grant = store.grant(NAMESPACE, UID, 1, 600)
    uploader = S3GrantArtifactStore(grant)
    stored = uploader.put("result.json", b'{"ok": true}\n')
    assert stored.uri == artifact_uri("grants", object_key(attempt_prefix(NAMESPACE, UID, 1), stored.digest))
    assert store.read(ArtifactRef.model_validate(stored.to_dict())) == b'{"ok": true}\n'

    blob = compress(b"forged")
    refused = {
        "another attempt": attempt_prefix(NAMESPACE, UID, 2) + "x.gz",
        "attempt 10 (a1 is no prefix of a10)": attempt_prefix(NAMESPACE, UID, 10) + "x.gz",
        "another run": attempt_prefix(NAMESPACE, OTHER_UID, 1) + "x.gz",
        "the expiry index": f"expiries/20000101T000000Z/{NAMESPACE}/{UID}/run",
        "a leading slash": "/" + grant.prefix + "x.gz",
        "a climb out with ../": grant.prefix + "../a2/x.gz",
    }
    for why, key in refused.items():
        response = post(grant, key, blob)
        assert response.status_code in (400, 403), f"{why}: {response.status_code} {response.text}"
    assert stored_keys(store) == {object_key(grant.prefix, stored.digest)}, "nothing else was written"


def test_the_server_refuses_an_oversize_expired_or_forged_upload(s3: S3Server) -> None:
    store = open_store(s3, "limits", max_object_bytes=4096)
    grant = store.grant(NAMESPACE, UID, 1, 600)
    noise = os.urandom(8192)  # does not compress
    with pytest.raises(ArtifactUploadError, match="over the grant's 4096"):
        S3GrantArtifactStore(grant).put("big.bin", noise)  # the runner does not even try
    oversize = post(grant, grant.prefix + "big.gz", noise)  # a pod that tries anyway
    assert oversize.status_code == 400 and "EntityTooLarge" in oversize.text

    now = server_now(s3)
    target = store.target
    key, secret = s3.credential.access_key, s3.credential.secret_key
    expired = sign_upload_grant(
        target, key, secret, grant.prefix, now=now - timedelta(hours=2), lifetime_seconds=3600
    )
    response = post(expired, expired.prefix + "late.gz", compress(b"late"))
    assert response.status_code == 403 and "expired" in response.text.lower()
    forged = {**grant.fields, "x-amz-signature": "0" * 64}
    assert post(grant, grant.prefix + "f.gz", compress(b"f"), forged).status_code == 403
    # A policy rewritten to a wider prefix, under the old signature, is refused too.
    wider = sign_upload_grant(target, key, "not-the-secret", "runs/", now=now, lifetime_seconds=600)
    assert post(wider, "runs/anything.gz", compress(b"w")).status_code == 403
    assert stored_keys(store) == set()


# --- what a pod lists, checked in the bucket -----------------------------------------------------------


def test_only_entries_the_bucket_bears_out_are_kept(s3: S3Server) -> None:
    store = open_store(s3, "verify")
    grant = store.grant(NAMESPACE, UID, 1, 600)
    honest = S3GrantArtifactStore(grant).put("answer.md", b"forty-two\n")
    other_digest = content_digest(b"something else")
    # The pod stores "evil" under the key of other content, and a gzip bomb under its own digest's key.
    post(grant, object_key(grant.prefix, other_digest), compress(b"evil"))
    bomb_digest = content_digest(b"bomb")
    post(grant, object_key(grant.prefix, bomb_digest), gzip.compress(b"\0" * (65 * 1024 * 1024)))
    foreign = object_key(attempt_prefix(NAMESPACE, OTHER_UID, 1), honest.digest)

    def entry(name: str, key: str, digest: str, size: int = 10) -> ArtifactRef:
        return ArtifactRef(name=name, uri=artifact_uri("verify", key), digest=digest, size_bytes=size)

    listed = [
        ArtifactRef.model_validate(honest.to_dict()),
        entry(
            "never-stored.md", object_key(grant.prefix, content_digest(b"ghost")), content_digest(b"ghost")
        ),
        entry("swapped.md", object_key(grant.prefix, other_digest), other_digest),
        entry("wrong-size.md", object_key(grant.prefix, honest.digest), honest.digest, size=999),
        entry("misaddressed.md", object_key(grant.prefix, honest.digest), other_digest),
        entry("foreign.md", foreign, honest.digest),
        entry("bomb.bin", object_key(grant.prefix, bomb_digest), bomb_digest),
        ArtifactRef(name="../escape.md", uri=honest.uri, digest=honest.digest, size_bytes=10),
        ArtifactRef(
            name="other-bucket.md", uri=honest.uri.replace("s3://verify/", "s3://nope/"), digest=honest.digest
        ),
        ArtifactRef(name="local.md", uri="file:///artifacts/local.md"),
    ]
    verified = store.verify(listed, NAMESPACE, UID, 1)

    assert [a.name for a in verified.artifacts] == ["answer.md", "local.md"]
    problems = "\n".join(verified.problems)
    assert len(verified.problems) == 8, problems
    for expected in (
        "never-stored.md: s3://verify/runs/team-a/",
        "is not in the bucket",
        f"swapped.md: stored content has digest {content_digest(b'evil')}, not {other_digest}",
        "wrong-size.md: stored content is 10 bytes, not 999",
        "misaddressed.md: key",
        "foreign.md: s3://verify/runs/team-a/0f1e2d3c-0000-4000-8000-000000000002/a1/",
        "outside this attempt's",
        "bomb.bin: s3://verify/runs/team-a/",
        "expands past 67108864 bytes",
        "artifact name '../escape.md' is not a plain file name",
        "other-bucket.md: s3://nope/",
    ):
        assert expected in problems, problems


def test_the_sweep_deletes_a_runs_artifacts_when_its_retention_has_passed(s3: S3Server) -> None:
    store = open_store(s3, "sweep")
    mine, theirs = store.grant(NAMESPACE, UID, 1, 600), store.grant(NAMESPACE, OTHER_UID, 1, 600)
    S3GrantArtifactStore(mine).put("a.md", b"mine")
    S3GrantArtifactStore(theirs).put("a.md", b"theirs")
    finished = parse_time("2026-11-01T10:00:00Z")
    store.mark_expiry(NAMESPACE, UID, "mine", finished + timedelta(days=7))
    store.mark_expiry(NAMESPACE, OTHER_UID, "theirs", finished + timedelta(days=30))

    assert store.sweep(finished + timedelta(days=7) - timedelta(seconds=1)) == []
    swept = store.sweep(finished + timedelta(days=7))
    assert [(m.namespace, m.uid, m.name) for m in swept] == [(NAMESPACE, UID, "mine")]
    assert stored_keys(store, "runs/") == {k for k in stored_keys(store, "runs/") if OTHER_UID in k} != set()
    assert stored_keys(store, "expiries/") == {f"expiries/20261201T100000Z/{NAMESPACE}/{OTHER_UID}/theirs"}
    assert store.sweep(finished + timedelta(days=8)) == [], "a sweep done is not done again"


# --- the Done-when, with the operator -----------------------------------------------------------


def test_a_runs_artifacts_outlive_its_pod_with_no_credential_in_it_and_go_when_expired(
    control_plane: ControlPlane, s3: S3Server, tmp_path: Path
) -> None:
    bucket = "runs"
    run = agent_run("kept", policy="route")
    run["spec"]["owner"]["team"] = "ml"
    run["spec"]["artifacts"] = {"retentionDays": 3}
    objects = [scripted_adapter(), route_policy(), team_budget("ml", "ml", "10.00"), run]
    credential = {
        "JESUS_ARTIFACTS_ACCESS_KEY_ID": s3.credential.access_key,
        "JESUS_ARTIFACTS_SECRET_ACCESS_KEY": s3.credential.secret_key,
    }
    cli_env = {
        **os.environ,
        **credential,
        "JESUS_ARTIFACTS_ENDPOINT": s3.endpoint,
        "JESUS_ARTIFACTS_BUCKET": bucket,
    }
    with operator_world(
        control_plane,
        tmp_path,
        "artifacts",
        objects,
        operator_environment=credential,
        operator_args=("--artifacts-endpoint", s3.endpoint, "--artifacts-bucket", bucket),
    ) as world:
        status = world.wait_phase("kept", "Succeeded", "Failed", timeout=90)
        assert status["phase"] == "Succeeded", world.describe()
        uid = world.plane.kubectl(
            "get", "agentrun", "kept", "-n", world.namespace, "-o", "jsonpath={.metadata.uid}"
        ).stdout
        pods = json.loads(world.plane.kubectl("get", "pods", "-n", world.namespace, "-o", "json").stdout)
        # The pod is gone: its Job deleted with it (the runtime kept nothing the test reads below).
        world.plane.kubectl("delete", "jobs", "--all", "-n", world.namespace, "--cascade=foreground")
        wait_for(
            lambda: (
                not json.loads(
                    world.plane.kubectl("get", "pods", "-n", world.namespace, "-o", "json").stdout
                )["items"]
            ),
            timeout=30,
            what="the runner pod to be gone",
        )
        # `jesus artifacts get` downloads them from what the run's status lists, digests checked.
        got = subprocess.run(
            [*CLI, "get", "kept", "-n", world.namespace, "--kubeconfig", str(world.plane.kubeconfig),
             "-o", str(tmp_path / "got")],
            env=cli_env, cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
    store = open_store(s3, bucket)

    # No storage credential in the runner pod: not its secret key, not its access key, no AWS variable;
    # its only storage setting is the grant, a policy for its own prefix.
    [pod] = pods["items"]
    env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}
    pod_text = json.dumps(pod)
    assert s3.credential.secret_key not in pod_text
    assert not [name for name in env if name.startswith(("AWS_", "JESUS_ARTIFACTS_"))]
    assert all(
        "secretKeyRef" not in json.dumps(e) or e["name"] == "JESUS_RUNNER_KEY"
        for e in pod["spec"]["containers"][0]["env"]
    )
    grant = UploadGrant.from_json(env["JESUS_ARTIFACT_GRANT"])
    assert grant.prefix == attempt_prefix(world.namespace, uid, 1)

    # The artifacts are in the bucket with the digests the status lists, the pod long gone.
    listed = [ArtifactRef.model_validate(a) for a in status["artifacts"]]
    assert {a.name for a in listed} >= {"final-answer.md", "transcript.json", "result.json"}
    for ref in listed:
        assert ref.uri.startswith(f"s3://{bucket}/{grant.prefix}")
        content = store.read(ref)
        assert content_digest(content) == ref.digest and len(content) == ref.size_bytes
    record = json.loads(store.read(next(a for a in listed if a.name == "result.json")))
    assert record["run"] == "kept" and record["outcome"] == "Succeeded"

    # The operator put the run in the expiry index at its completion time plus its 3 days.
    expiry = parse_time(status["completionTime"]) + timedelta(days=3)
    marker = f"expiries/{expiry.strftime('%Y%m%dT%H%M%SZ')}/{world.namespace}/{uid}/kept"
    assert stored_keys(store, "expiries/") == {marker}

    for ref in listed:
        assert content_digest((tmp_path / "got" / ref.name).read_bytes()) == ref.digest

    # Expired: the sweep (as the operator's, here with the moment given) deletes them, all of them.
    late = (expiry + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    swept = subprocess.run(
        [*CLI, "sweep", "--now", late], env=cli_env, cwd=REPO, capture_output=True, text=True, check=True
    )
    assert f"Deleted the artifacts of {world.namespace}/kept" in swept.stdout
    assert stored_keys(store, f"runs/{world.namespace}/") == set()
    assert stored_keys(store, "expiries/") == set()


LESSON_TEXT = "Quote the report's own figures instead of recomputing them."


def reflection_reply(*, candidates: tuple[str, ...] = (), applied: tuple[str, ...] = ()) -> dict[str, str]:
    """A scripted model's reflection (LAW-REFLECT-001) citing the run's final answer."""
    return {
        "text": json.dumps(
            {
                "goal": "Summarise the report.",
                "outcome": "met",
                "evidence": ["artifact:final-answer.md"],
                "wentWrong": [],
                "escalation": {"needed": False, "why": "a routine summary"},
                "lessons": {
                    "offered": list(applied),
                    "applied": [{"id": i, "outcome": "it held"} for i in applied],
                },
                "lessonCandidates": [
                    {"text": t, "evidence": ["artifact:final-answer.md"]} for t in candidates
                ],
                "cost": {"tokens": 120, "costMicros": 140, "withinLimits": True},
            }
        )
    }


def test_a_lesson_goes_from_a_runs_reflection_through_three_reuses_to_a_long_term_file(
    control_plane: ControlPlane, s3: S3Server, tmp_path: Path
) -> None:
    # Issue 18 in the cluster: the operator reads each archived run's reflection.json from the bucket,
    # records its candidate as a short-term lesson, offers it to the team's later runs (JESUS_LESSONS),
    # counts their reuses; `jesus lessons promote` checks the evidence in the bucket and writes the file.
    from jesus.logic.lessons import lesson_id
    from jesus.records import RecordStore, database_url
    from jesus.records.lessons import LessonArchive

    bucket, lesson = "lessons", lesson_id("ml", LESSON_TEXT)
    answer = {"text": "12 of 15 closed.", "usage": {"inputTokens": 100, "outputTokens": 20}}
    objects = [
        scripted_adapter("teacher", replies=[answer, reflection_reply(candidates=(LESSON_TEXT,))]),
        scripted_adapter("learner", replies=[answer, reflection_reply(applied=(lesson,))] * 3),
        route_policy("teach", ("teacher",)),
        route_policy("learn", ("learner",)),
        team_budget("ml", "ml", "10.00"),
    ]
    database = f"sqlite:///{tmp_path / 'archive.db'}"
    credential = {
        "JESUS_ARTIFACTS_ACCESS_KEY_ID": s3.credential.access_key,
        "JESUS_ARTIFACTS_SECRET_ACCESS_KEY": s3.credential.secret_key,
    }
    endpoint = ("--artifacts-endpoint", s3.endpoint, "--artifacts-bucket", bucket)
    with operator_world(
        control_plane,
        tmp_path,
        "lessons",
        objects,
        operator_environment=credential,
        operator_args=(*endpoint, "--archive-database", database),
    ) as world:
        offered = []
        for name, route in [("teach-1", "teach"), *((f"apply-{n}", "learn") for n in (1, 2, 3))]:
            world.apply(agent_run(name, policy=route, reflection="Checklist"))
            status = world.wait_phase(name, "Succeeded", "Failed", timeout=90)
            assert status["phase"] == "Succeeded", world.describe()
            job = json.loads(
                world.plane.kubectl(
                    "get", "job", status["jobName"], "-n", world.namespace, "-o", "json"
                ).stdout
            )
            env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
            offered.append([o["id"] for o in json.loads(env.get("JESUS_LESSONS") or "[]")])
            wait_for(
                lambda n=name: any(
                    c["type"] == "Archived" and c["status"] == "True"
                    for c in world.run_status(n).get("conditions", [])
                ),
                timeout=30,
                what=f"{name} archived",
                describe=world.describe,
            )

    assert offered == [[], [lesson], [lesson], [lesson]]  # the teacher's run had nothing to be offered

    async def archived() -> list[Any]:
        store = RecordStore(database_url(database))
        try:
            return await LessonArchive(store).lessons("ml")
        finally:
            await store.close()

    [kept] = asyncio.run(archived())
    assert kept.metadata.name == lesson and kept.spec.memory == "ShortTerm"
    assert [(e.run, e.role) for e in kept.spec.evidence] == [
        ("teach-1", "Origin"), ("apply-1", "Reuse"), ("apply-2", "Reuse"), ("apply-3", "Reuse"),
    ]  # fmt: skip
    [origin_artifact] = kept.spec.evidence[0].artifacts or []
    assert origin_artifact.name == "final-answer.md" and (origin_artifact.uri or "").startswith(
        f"s3://{bucket}/"
    )

    specs = tmp_path / "specs"
    specs.mkdir()
    env = {
        **os.environ,
        **credential,
        "JESUS_ARTIFACTS_ENDPOINT": s3.endpoint,
        "JESUS_ARTIFACTS_BUCKET": bucket,
    }
    promote = [sys.executable, "-m", "jesus.cli", "lessons", "promote", lesson, "--specs", str(specs)]
    promoted = subprocess.run(
        [*promote, "--database", database], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert promoted.returncode == 0, promoted.stderr
    text = (specs / f"{lesson}.yaml").read_text()
    assert "memory: LongTerm" in text and LESSON_TEXT in text
    # With the evidence gone from the bucket (expired), promotion is refused, naming it.
    open_store(s3, bucket).delete_prefix("runs/")
    (specs / f"{lesson}.yaml").unlink()
    refused = subprocess.run(
        [*promote, "--database", database], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "evidence final-answer.md of run teach-1 no longer exists" in refused.stderr
