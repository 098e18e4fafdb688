"""The read API's artifact route (jesus.readapi.artifacts) over an SQLite archive: the run's access check,
a 307 to a pre-signed GET for `s3://` artifacts, bytes with their digest checked for `file://` ones (and
only from the configured directory), 410 once the retention has passed (injected clock), and every
careless or hostile name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from tests.builders.archived_runs import archive, archived_run
from tests.unit.records.test_read_api import BUDGETS, KEY, Clock, FakeApiServer, auth

from jesus.api.objects import JsonObject, content_digest
from jesus.logic.artifacts import ArtifactBucket, artifact_uri, object_key
from jesus.logic.run_queries import CursorSigner
from jesus.readapi.access import NamespaceAccess, TokenReviewAuthenticator
from jesus.readapi.app import create_app
from jesus.readapi.service import ReadService
from jesus.records import RecordStore
from jesus.records.artifacts import S3Artifacts
from jesus.records.reader import ArchiveReader

UID = "5e1f0000-0000-4000-8000-0000000000aa"
STORED = b'{"answer": 42}\n'


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.db'}"


def run_with(artifacts: list[dict[str, Any]], name: str = "a1", namespace: str = "team-a") -> Any:
    facts, obj = archived_run(name, namespace=namespace, uid=UID if name == "a1" else None)
    obj["status"]["artifacts"] = artifacts
    obj["spec"]["artifacts"] = {"retentionDays": 10}
    return facts, obj


@pytest.fixture
async def client(store: RecordStore, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    root = tmp_path / "artifacts"
    root.mkdir()
    (root / "notes.md").write_bytes(b"notes\n")
    (tmp_path / "outside.md").write_bytes(b"secret\n")
    key = object_key(f"runs/team-a/{UID}/a1/", content_digest(STORED))
    listed = [
        {
            "name": "result.json",
            "uri": artifact_uri("arts", key),
            "sizeBytes": 15,
            "digest": content_digest(STORED),
        },
        {"name": "notes.md", "uri": (root / "notes.md").as_uri(), "digest": content_digest(b"notes\n")},
        {"name": "altered.md", "uri": (root / "notes.md").as_uri(), "digest": content_digest(b"other\n")},
        {
            "name": "outside.md",
            "uri": (tmp_path / "outside.md").as_uri(),
            "digest": content_digest(b"secret\n"),
        },
        {
            "name": "climb.md",
            "uri": (root / ".." / "outside.md").as_uri(),
            "digest": content_digest(b"secret\n"),
        },
    ]
    await archive(store, run_with(listed), run_with([listed[0]], name="b1", namespace="team-b"))
    reader = ArchiveReader(store.url)
    server, clock = FakeApiServer(), Clock()
    now = {"at": datetime(2026, 12, 1, tzinfo=UTC)}

    async def budgets() -> list[JsonObject]:
        return BUDGETS

    service = ReadService(
        reader, NamespaceAccess(server, reader.namespaces, clock=clock), CursorSigner(KEY), budgets
    )
    app = create_app(service, TokenReviewAuthenticator(server, clock=clock))
    app.state.clock = lambda: now["at"]
    app.state.artifacts = S3Artifacts(ArtifactBucket("http://s3.test:8333", "arts"), "AKID", "secret-key")
    app.state.artifact_root = root
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http:
        yield http, now
    await reader.close()


async def test_an_s3_artifact_is_a_short_lived_redirect_for_a_reader_of_its_namespace(client: Any) -> None:
    http, _now = client
    response = await http.get("/v1/runs/team-a/a1/artifacts/result.json", headers=auth("viewer-a"))
    assert response.status_code == 307, response.text
    target = urlparse(response.headers["location"])
    assert (target.netloc, target.path) == (
        "s3.test:8333",
        f"/arts/runs/team-a/{UID}/a1/{content_digest(STORED)[7:]}.gz",
    )
    query = parse_qs(target.query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["response-content-encoding"] == ["gzip"]
    assert query["response-content-disposition"] == ['attachment; filename="result.json"']
    assert "secret-key" not in response.headers["location"]
    assert response.headers["cache-control"] == "no-store"


async def test_the_same_access_as_the_runs_detail(client: Any) -> None:
    http, _now = client
    for token, path in (
        ("viewer-a", "/v1/runs/team-b/b1/artifacts/result.json"),  # another team's run
        ("stranger", "/v1/runs/team-a/a1/artifacts/result.json"),
    ):
        response = await http.get(path, headers=auth(token))
        assert (response.status_code, response.json()["error"]["code"]) == (404, "NotFound")
    assert (await http.get("/v1/runs/team-a/a1/artifacts/result.json")).status_code == 401
    assert (
        await http.get("/v1/runs/team-b/b1/artifacts/result.json", headers=auth("admin"))
    ).status_code == 307


@pytest.mark.parametrize("name", ["missing.md", "%2E%2E", "..%2Fresult.json", ".result.json", "RESULT.JSON"])
async def test_an_artifact_the_run_does_not_list_is_a_404(client: Any, name: str) -> None:
    http, _now = client
    response = await http.get(f"/v1/runs/team-a/a1/artifacts/{name}", headers=auth("viewer-a"))
    assert response.status_code == 404


async def test_a_local_artifact_is_served_from_the_directory_with_its_digest_checked(client: Any) -> None:
    http, _now = client
    response = await http.get("/v1/runs/team-a/a1/artifacts/notes.md", headers=auth("viewer-a"))
    assert (response.status_code, response.content) == (200, b"notes\n")
    assert response.headers["content-disposition"] == 'attachment; filename="notes.md"'
    altered = await http.get("/v1/runs/team-a/a1/artifacts/altered.md", headers=auth("viewer-a"))
    assert altered.status_code == 502
    assert "altered.md: stored content has digest" in altered.json()["error"]["message"]
    for name in ("outside.md", "climb.md"):  # a record that names any file is not served any file
        refused = await http.get(f"/v1/runs/team-a/a1/artifacts/{name}", headers=auth("viewer-a"))
        assert refused.status_code == 503 and b"secret" not in refused.content
        assert "is not in this server's artifact directory" in refused.json()["error"]["message"]


async def test_past_the_retention_the_api_says_gone(client: Any) -> None:
    http, now = client
    now["at"] = datetime(2026, 12, 10, 10, 0, 8, tzinfo=UTC)  # completed 2026-11-30T10:00:09Z, 10 days
    assert (
        await http.get("/v1/runs/team-a/a1/artifacts/result.json", headers=auth("viewer-a"))
    ).status_code == 307
    now["at"] = datetime(2026, 12, 10, 10, 0, 9, tzinfo=UTC)
    response = await http.get("/v1/runs/team-a/a1/artifacts/result.json", headers=auth("viewer-a"))
    assert response.status_code == 410
    assert response.json()["error"] == {
        "code": "Expired",
        "message": "AgentRun team-a/a1: its artifacts expired at 2026-12-10T10:00:09Z and are deleted",
    }
