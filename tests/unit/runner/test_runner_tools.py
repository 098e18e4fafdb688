"""MCP tool servers through the runner's ToolBox: stdio and streamable HTTP, allowed tools, failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jesus.runner.tools import ToolBox, ToolServerError, ToolServerSpec

from .conftest import MISBEHAVING_SERVER, workspace_server


def misbehaving(mode: str, *, timeout: float = 2.0) -> ToolServerSpec:
    return ToolServerSpec(
        name="bad",
        transport="stdio",
        command="python",
        args=(str(MISBEHAVING_SERVER), mode),
        timeout_seconds=timeout,
    )


async def test_stdio_server_tools_are_listed_and_called(workspace: Path) -> None:
    async with ToolBox((workspace_server(workspace, timeout_seconds=10),)) as tools:
        assert {spec.name for spec in tools.specs} == {
            "list_files",
            "read_file",
            "search_text",
            "count_words",
        }
        listed = await tools.call("c1", "list_files", {})
        found = await tools.call("c2", "search_text", {"pattern": "^ship"})
    assert not listed.is_error
    assert listed.text.splitlines() == ["README.md", "notes/todo.txt"]
    assert found.text.count("notes/todo.txt") == 2
    assert [(c.server, c.tool, c.is_error) for c in tools.calls] == [
        ("workspace", "list_files", False),
        ("workspace", "search_text", False),
    ]


async def test_http_server_tools_are_called(workspace_http_url: str) -> None:
    spec = ToolServerSpec(
        name="workspace", transport="http", url=workspace_http_url, allowed_tools=("read_file",)
    )
    async with ToolBox((spec,)) as tools:
        assert [s.name for s in tools.specs] == ["read_file"]
        result = await tools.call("c1", "read_file", {"path": "README.md"})
    assert "launch is on Friday" in result.text
    assert not result.is_error


async def test_a_tool_that_is_not_allowed_is_refused_with_an_explanation(workspace: Path) -> None:
    async with ToolBox((workspace_server(workspace, "read_file", timeout_seconds=10),)) as tools:
        refused = await tools.call("c1", "list_files", {})
    assert refused.is_error
    assert "not allowed" in refused.text
    assert tools.calls[0].server is None


async def test_a_tool_error_reaches_the_model_as_an_error_result(workspace: Path) -> None:
    async with ToolBox((workspace_server(workspace, timeout_seconds=10),)) as tools:
        escaped = await tools.call("c1", "read_file", {"path": "../../etc/passwd"})
    assert escaped.is_error
    assert "outside the workspace" in escaped.text


async def test_allowing_a_tool_the_server_lacks_fails_at_start(workspace: Path) -> None:
    with pytest.raises(ToolServerError, match="does not offer the allowed tools"):
        async with ToolBox((workspace_server(workspace, "delete_everything", timeout_seconds=10),)):
            pass


async def test_a_server_that_exits_at_start_is_reported() -> None:
    with pytest.raises(ToolServerError, match="'bad' failed to start"):
        async with ToolBox((misbehaving("exit-at-start"),)):
            pass


async def test_a_server_that_answers_garbage_is_reported_without_hanging() -> None:
    started = time.monotonic()
    with pytest.raises(ToolServerError, match="did not answer within 1s"):
        async with ToolBox((misbehaving("garbage"),), connect_timeout_seconds=1):
            pass
    assert time.monotonic() - started < 15


async def test_a_server_that_crashes_during_a_call_gives_error_results() -> None:
    async with ToolBox((misbehaving("crash-on-call"),)) as tools:
        assert (await tools.call("c1", "echo", {"text": "hi"})).text == "hi"
        crashed = await tools.call("c2", "explode", {})
        after = await tools.call("c3", "echo", {"text": "again"})
    assert crashed.is_error
    assert "failed" in crashed.text
    assert after.is_error


async def test_a_slow_tool_times_out_as_an_error_result() -> None:
    async with ToolBox((misbehaving("slow", timeout=0.5),)) as tools:
        slow = await tools.call("c1", "sleep", {"seconds": 30})
    assert slow.is_error
    assert "no answer within 0.5s" in slow.text


async def test_a_tool_result_that_breaks_the_protocol_is_an_error_result() -> None:
    async with ToolBox((misbehaving("bad-result"),)) as tools:
        assert [s.name for s in tools.specs] == ["lookup"]
        garbage = await tools.call("c1", "lookup", {})
    assert garbage.is_error
    assert "failed" in garbage.text
