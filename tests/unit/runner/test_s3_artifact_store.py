"""The runner's S3 uploader (jesus.runner.artifacts.S3GrantArtifactStore) against a stand-in server that
records the form: gzip, content-addressed under the grant's prefix, the grant's fields and nothing of a
credential; refusals, oversize and careless names. And which store a pod picks from its environment."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from jesus.api.objects import content_digest
from jesus.logic.artifacts import ArtifactBucket, attempt_prefix, sign_upload_grant
from jesus.runner.artifacts import ArtifactUploadError, DirectoryArtifactStore, S3GrantArtifactStore
from jesus.runner.pod import _artifact_store
from jesus.runner.record import RunRecord

UID = "6f1c2a9e-1b2c-4d5e-8f90-0123456789ab"
PREFIX = attempt_prefix("team-a", UID, 1)
GRANT = sign_upload_grant(
    ArtifactBucket("http://s3.test", "arts", max_object_bytes=2048),
    "AKID",
    "the-secret-key",
    PREFIX,
    now=datetime(2026, 11, 30, tzinfo=UTC),
    lifetime_seconds=600,
)


class FormServer:
    """Answers every POST with `status` and keeps what was posted."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return httpx.Response(self.status, text="" if self.status < 300 else "<Error>AccessDenied</Error>")


def uploader(server: FormServer) -> S3GrantArtifactStore:
    return S3GrantArtifactStore(GRANT, httpx.Client(transport=httpx.MockTransport(server)))


def test_an_artifact_is_posted_gzip_under_the_prefix_by_its_digest_with_the_grants_fields() -> None:
    server = FormServer()
    stored = uploader(server).put("transcript.json", b'{"messages": []}\n')
    digest = content_digest(b'{"messages": []}\n')
    key = f"{PREFIX}{digest.removeprefix('sha256:')}.gz"
    assert stored.to_dict() == {
        "name": "transcript.json",
        "uri": f"s3://arts/{key}",
        "sizeBytes": 17,
        "digest": digest,
    }
    [request] = server.requests
    assert str(request.url) == "http://s3.test/arts"
    body = request.content
    assert f'name="key"\r\n\r\n{key}\r\n'.encode() in body
    for name, value in GRANT.fields.items():
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body
    assert b"the-secret-key" not in body and "authorization" not in request.headers
    # The file part is the gzip of the content, and it comes after the fields, as S3 requires.
    assert body.index(b'name="file"') > body.index(b'name="x-amz-signature"')
    assert gzip.compress(b'{"messages": []}\n', mtime=0)[10:] in body  # same deflate stream


def test_a_refused_or_unreachable_upload_is_an_error_naming_the_artifact() -> None:
    with pytest.raises(
        ArtifactUploadError, match=r"artifact a\.md: the S3 server refused the upload \(HTTP 403"
    ):
        uploader(FormServer(403)).put("a.md", b"x")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = S3GrantArtifactStore(GRANT, httpx.Client(transport=httpx.MockTransport(down)))
    with pytest.raises(
        ArtifactUploadError, match=r"artifact b\.md could not be uploaded to http://s3.test/arts"
    ):
        store.put("b.md", b"x")
    assert isinstance(ArtifactUploadError("x"), OSError), "the loop records an OSError as a warning"


def test_an_oversize_artifact_is_refused_before_it_is_sent() -> None:
    server = FormServer()
    # 16 KiB of hash output: gzip cannot shrink it below 2 KiB.
    incompressible = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(512))
    with pytest.raises(ArtifactUploadError, match="over the grant's 2048"):
        uploader(server).put("big.bin", incompressible)
    assert server.requests == []


@pytest.mark.parametrize("name", ["../escape.md", "a/b.md", ".hidden", "", "x" * 300])
def test_a_name_that_is_no_plain_file_name_is_refused(name: str) -> None:
    server = FormServer()
    with pytest.raises(ValueError, match="must be a plain file name"):
        uploader(server).put(name, b"x")
    assert server.requests == []


def test_a_pod_uploads_with_its_grant_and_keeps_a_directory_without_one(tmp_path: Path) -> None:
    record = RunRecord(run="r", namespace="team-a")
    chosen = _artifact_store({"JESUS_ARTIFACT_GRANT": GRANT.to_json()}, record)
    assert isinstance(chosen, S3GrantArtifactStore) and chosen.grant == GRANT
    chosen.close()
    local = _artifact_store({"JESUS_ARTIFACT_DIR": str(tmp_path)}, record)
    assert isinstance(local, DirectoryArtifactStore) and local.root == tmp_path
    assert record.warnings == []


def test_a_careless_grant_leaves_the_run_without_artifacts_and_says_so() -> None:
    record = RunRecord(run="r", namespace="team-a")
    assert _artifact_store({"JESUS_ARTIFACT_GRANT": "{not json"}, record) is None
    [warning] = record.warnings
    assert warning.startswith("JESUS_ARTIFACT_GRANT: the artifact grant is not JSON: Expecting property")
    assert warning.endswith("; no artifacts were stored")
