"""`jesus mcp`'s tools through the MCP SDK's own client (in process), over an SQLite archive and a fake
API server for submit_run: the read tools answer what the read API answers, bad parameters are tool
errors naming them, and a run is submitted as the caller, its owner filled in from who they are."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from tests.builders.archived_runs import archive, standard_runs

from jesus.api.objects import JsonObject
from jesus.kube import KubeError
from jesus.logic.run_queries import CursorSigner
from jesus.readapi.access import NamespaceAccess
from jesus.readapi.mcp_server import build_mcp_server
from jesus.readapi.service import ReadService
from jesus.records import RecordStore
from jesus.records.reader import ArchiveReader

SPEC = {
    "owner": {"team": "a"},
    "task": {"instructions": "Summarise the input."},
    "routePolicyRef": {"name": "route"},
    "limits": {"maxCost": "0.50"},
}


class FakeApiServer:
    def __init__(self) -> None:
        self.created: list[JsonObject] = []
        self.refuse: KubeError | None = None

    async def who_am_i(self) -> JsonObject:
        return {"username": "ada@example.com", "groups": ["team-a"]}

    async def create(self, obj: JsonObject) -> JsonObject:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(obj)
        return {**obj, "metadata": {**obj["metadata"], "uid": "uid-new"}}


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.db'}"


@pytest.fixture
def api_server() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
async def server(store: RecordStore, api_server: FakeApiServer) -> AsyncIterator[MCPServer]:
    """The server; each test connects the SDK's client in its own task (anyio's scopes need that)."""
    await archive(store, *standard_runs())
    reader = ArchiveReader(store.url)

    async def budgets() -> list[JsonObject]:
        return [
            {"metadata": {"namespace": "team-a", "name": "team"}, "spec": {"limit": "10.00"}, "status": {}}
        ]

    access = NamespaceAccess(None, reader.namespaces, clock=lambda: 0.0)
    yield build_mcp_server(ReadService(reader, access, CursorSigner(b"k" * 32), budgets), api_server)
    await reader.close()


def answer(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    [content] = result.content
    assert isinstance(content, TextContent)
    return json.loads(content.text)


def refusal(result: CallToolResult) -> str:
    assert result.is_error
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


async def test_the_tools_are_listed_with_their_parameters(server: MCPServer) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"list_runs", "get_run", "run_calls", "costs", "budgets", "submit_run"}
        assert tools["costs"].input_schema["required"] == ["group_by"]
        assert set(tools["submit_run"].input_schema["required"]) == {"namespace", "name", "spec"}


async def test_the_read_tools_answer_what_the_api_answers(server: MCPServer) -> None:
    async with Client(server) as client:
        page = answer(await client.call_tool("list_runs", {"namespace": "team-a", "limit": 2}))
        assert [r["name"] for r in page["items"]] == ["a5", "a4"]
        rest = answer(
            await client.call_tool("list_runs", {"namespace": "team-a", "cursor": page["nextCursor"]})
        )
        assert [r["name"] for r in rest["items"]] == ["a3", "a2", "a1"]
        run = answer(await client.call_tool("get_run", {"namespace": "team-a", "name": "a3"}))
        assert (run["costMicros"], run["record"]["kind"]) == (4500, "AgentRun")
        calls = answer(await client.call_tool("run_calls", {"namespace": "team-a", "name": "a3"}))
        assert calls["items"][0]["fallbacks"] == [{"adapter": "primary", "errorClass": "RateLimited"}]
        costs = answer(await client.call_tool("costs", {"group_by": "team"}))
        assert [(g["key"], g["costMicros"]) for g in costs["groups"]] == [("team-a", 12000), ("team-b", 6000)]
        budgets = answer(await client.call_tool("budgets", {}))
        assert budgets["items"][0]["spec"] == {"limit": "10.00"}


async def test_bad_parameters_are_tool_errors_that_name_them(server: MCPServer) -> None:
    async with Client(server) as client:
        assert "groupBy: 'galaxy' is not one of team, user, model, adapter" in refusal(
            await client.call_tool("costs", {"group_by": "galaxy"})
        )
        assert "limit: 0 is not from 1 to 500" in refusal(await client.call_tool("list_runs", {"limit": 0}))
        assert "cursor: its signature does not match" in refusal(
            await client.call_tool("list_runs", {"cursor": "e30.AAAA"})
        )
        assert 'namespace: "x\' OR 1=1" is not a namespace name' in refusal(
            await client.call_tool("list_runs", {"namespace": "x' OR 1=1"})
        )
        assert "no archived AgentRun team-a/nope" in refusal(
            await client.call_tool("get_run", {"namespace": "team-a", "name": "nope"})
        )


async def test_a_run_is_submitted_as_the_caller(server: MCPServer, api_server: FakeApiServer) -> None:
    async with Client(server) as client:
        created = answer(
            await client.call_tool("submit_run", {"namespace": "team-a", "name": "new", "spec": SPEC})
        )
        assert created == {"namespace": "team-a", "name": "new", "uid": "uid-new", "owner": "ada@example.com"}
        [obj] = api_server.created
        assert obj["spec"]["owner"] == {"team": "a", "user": "ada@example.com"}
        assert (obj["kind"], obj["metadata"]) == ("AgentRun", {"name": "new", "namespace": "team-a"})
        # Another owner than the caller, an invalid spec, and the API server's refusal: each said plainly.
        other = {**SPEC, "owner": {"team": "a", "user": "grace@example.com"}}
        message = refusal(
            await client.call_tool("submit_run", {"namespace": "team-a", "name": "x", "spec": other})
        )
        assert "spec.owner.user is 'grace@example.com' but you are 'ada@example.com'" in message
        broken = {**SPEC, "limits": {"maxCost": "lots"}}
        message = refusal(
            await client.call_tool("submit_run", {"namespace": "team-a", "name": "x", "spec": broken})
        )
        assert "AgentRun team-a/x is not valid: spec.limits.maxCost" in message
        api_server.refuse = KubeError(
            403, "Forbidden", 'agentruns.jesus.dev is forbidden: User "ada" cannot create'
        )
        message = refusal(
            await client.call_tool("submit_run", {"namespace": "team-b", "name": "x", "spec": SPEC})
        )
        assert (
            "the API server refused AgentRun team-b/x: 403 Forbidden: agentruns.jesus.dev is forbidden"
            in message
        )
        assert len(api_server.created) == 1
