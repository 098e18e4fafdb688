"""`jesus router` as a process under oversized bodies: eight concurrent 50 MB uploads, declared and
streamed, are refused with 413, the process's memory stays bounded, and it still serves a run."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.processes import router_process
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

pytestmark = pytest.mark.e2e

ADMIN = "e2e-limits-admin"
UPLOAD_BYTES = 50 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
MAX_GROWTH_BYTES = 300 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set size, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    specs = tmp_path / "specs.yaml"
    specs.write_text(
        to_yaml(scripted_adapter("scripted", text="served after the flood"), route_policy("route"))
    )
    with router_process(
        specs, secrets_dir=tmp_path, environment={"JESUS_ROUTER_ADMIN_TOKEN": ADMIN}, output=subprocess.PIPE
    ) as served:
        yield served


async def _streamed() -> AsyncIterator[bytes]:
    for _ in range(UPLOAD_BYTES // len(CHUNK)):
        yield CHUNK


async def _upload(client: httpx.AsyncClient, path: str, token: str, *, declared: bool) -> int:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    content: bytes | AsyncIterator[bytes] = _streamed()
    if declared:
        # A declared length is refused before a byte is read; the client may see the reset first.
        headers["content-length"] = str(UPLOAD_BYTES)
    try:
        answer = await client.post(path, content=content, headers=headers)
    except httpx.TransportError:
        return 0  # the router closed the connection after answering 413, mid-upload
    return answer.status_code


async def test_concurrent_oversized_bodies_are_refused_with_bounded_memory(
    router: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = router
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        registered = await client.post(
            "/admin/v1/runs",
            json={"run": "flood", "routePolicy": "route"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        token = registered.json()["token"]
        before = rss_bytes(process.pid)
        peak = before
        uploads = [
            asyncio.ensure_future(
                _upload(client, path, ADMIN if "admin" in path else token, declared=n % 2 == 0)
            )
            for n, path in enumerate(["/v1/chat/completions"] * 6 + ["/admin/v1/runs"] * 2)
        ]
        while not all(upload.done() for upload in uploads):
            peak = max(peak, rss_bytes(process.pid))
            await asyncio.sleep(0.05)
        statuses = [upload.result() for upload in uploads]
        answer = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {token}"},
        )
    assert statuses.count(413) >= 4, statuses
    assert set(statuses) <= {413, 0}, statuses
    assert peak - before < MAX_GROWTH_BYTES, f"RSS grew {(peak - before) >> 20} MB"
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "served after the flood"
