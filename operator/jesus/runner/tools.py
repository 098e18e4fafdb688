"""MCP tool servers of a run: connect over stdio or streamable HTTP, offer only the allowed tools.

Every failure of a tool server (it will not start, crashes, answers garbage or too slowly) becomes a
tool result marked as an error, so the model sees it and the run's record explains it; a server that
cannot be reached at all ends the run before the first model call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO

from opentelemetry.trace import SpanKind, Status, StatusCode

from jesus.api.agentrun import AgentRun
from jesus.runner import spans
from jesus.runner.stderr_lines import StderrLines
from jesus_adapters.types import ToolSpec

if TYPE_CHECKING:  # the MCP SDK is imported when a run has tool servers: most runner pods never need it
    from mcp import Client
    from mcp.client import Transport
    from mcp.types import CallToolResult

log = logging.getLogger(__name__)

MAX_RESULT_CHARACTERS = 32_000


@dataclass(frozen=True, slots=True)
class ToolServerSpec:
    """One MCP server a run may use.

    `transport` is `stdio` (the runner starts `command` with `args`) or `http` (streamable HTTP at
    `url`). `allowed_tools` names the tools the run may call; empty means every tool the server lists.
    """

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    allowed_tools: tuple[str, ...] = ()
    timeout_seconds: float = 30.0


class ToolServerError(Exception):
    """A tool server could not be started, reached or listed."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call produced, as text for the model; `is_error` when the call failed."""

    text: str
    is_error: bool
    structured: Any = None


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a run, for the result record and the tool-results artifact."""

    call_id: str
    server: str | None
    tool: str
    arguments: dict[str, Any]
    is_error: bool
    result: str
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "callId": self.call_id,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "isError": self.is_error,
            "result": self.result,
            "latencyMs": round(self.latency_ms, 3),
        }


@dataclass(slots=True)
class _Connected:
    spec: ToolServerSpec
    client: Client


class ToolBox:
    """The tools of one run, gathered from its MCP servers. Use as an async context manager.

    Open and close it in the same task: the MCP client's transports hold task-scoped resources.
    """

    def __init__(
        self,
        servers: tuple[ToolServerSpec, ...],
        *,
        connect_timeout_seconds: float = 20.0,
        errlog: TextIO | None = None,
    ) -> None:
        self.servers = servers
        # Where stdio servers' stderr goes: `errlog` when given, else each server's lines become the
        # runner's log records (JSON of the schema, redacted), not raw bytes among them.
        self.errlog = errlog
        self.connect_timeout_seconds = connect_timeout_seconds
        self.specs: tuple[ToolSpec, ...] = ()
        self.calls: list[ToolCallRecord] = []
        self._routes: dict[str, _Connected] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> ToolBox:
        try:
            for server in self.servers:
                await self._connect(server)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._stack.aclose()
        except Exception as exc:  # a server that died mid-run must not hide the run's outcome
            log.warning("Closing tool servers failed error=%s", exc)

    async def _connect(self, server: ToolServerSpec) -> None:
        errlog = self.errlog or sys.__stderr__ or sys.stderr
        if self.errlog is None and server.transport == "stdio":
            lines = StderrLines(server.name)
            self._stack.callback(lines.close)  # after the server's transport closes (the stack is LIFO)
            errlog = lines.file
        from mcp import Client

        client = Client(_target(server, errlog), read_timeout_seconds=server.timeout_seconds)
        try:
            async with asyncio.timeout(self.connect_timeout_seconds):
                await self._stack.enter_async_context(client)
                listed = await client.list_tools()
        except TimeoutError:
            raise ToolServerError(
                f"tool server {server.name!r} did not answer within {self.connect_timeout_seconds:g}s"
            ) from None
        except Exception as exc:
            raise ToolServerError(f"tool server {server.name!r} failed to start: {_describe(exc)}") from exc
        offered = {tool.name: tool for tool in listed.tools}
        missing = [name for name in server.allowed_tools if name not in offered]
        if missing:
            raise ToolServerError(
                f"tool server {server.name!r} does not offer the allowed tools {missing}; "
                f"it offers {sorted(offered)}"
            )
        names = server.allowed_tools or tuple(offered)
        specs = list(self.specs)
        for name in names:
            if name in self._routes:
                raise ToolServerError(
                    f"tool {name!r} is offered by both {self._routes[name].spec.name!r} and {server.name!r}"
                )
            tool = offered[name]
            self._routes[name] = _Connected(server, client)
            specs.append(
                ToolSpec(name=name, description=tool.description or "", input_schema=tool.input_schema)
            )
        self.specs = tuple(specs)
        log.info(
            "Connected tool server server=%s transport=%s tools=%s", server.name, server.transport, names
        )

    async def call(self, call_id: str, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call an allowed tool; anything else comes back as an error result, never an exception."""
        started = asyncio.get_running_loop().time()
        route = self._routes.get(name)
        server = route.spec.name if route else None
        span_name = f"execute_tool {name}" if route else "execute_tool"
        with spans.tracer.start_as_current_span(
            span_name, kind=SpanKind.INTERNAL, attributes=spans.tool_span_attributes(name, call_id, server)
        ) as span:
            if route is None:
                result = ToolResult(
                    f"tool {name!r} is not allowed for this run; allowed tools: {sorted(self._routes)}",
                    is_error=True,
                )
            else:
                result = await self._call_server(route, name, arguments)
            if result.is_error:
                span.set_attribute("error.type", "tool_error" if route else "tool_not_allowed")
                span.set_status(Status(StatusCode.ERROR))
        elapsed = (asyncio.get_running_loop().time() - started) * 1000
        self.calls.append(
            ToolCallRecord(
                call_id,
                route.spec.name if route else None,
                name,
                arguments,
                result.is_error,
                result.text,
                elapsed,
            )
        )
        return result

    async def _call_server(self, route: _Connected, name: str, arguments: dict[str, Any]) -> ToolResult:
        timeout = route.spec.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                answer = await route.client.call_tool(name, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            return ToolResult(f"tool {name!r} gave no answer within {timeout:g}s", is_error=True)
        except Exception as exc:  # a crashed server or a garbage answer is the tool's failure, not the run's
            log.warning("Tool call failed tool=%s server=%s error=%s", name, route.spec.name, _describe(exc))
            return ToolResult(f"tool {name!r} failed: {_describe(exc)}", is_error=True)
        return _as_result(answer)


def _target(server: ToolServerSpec, errlog: TextIO) -> Transport | str:
    if server.transport == "http":
        if not server.url:
            raise ToolServerError(f"tool server {server.name!r} uses http but names no url")
        return server.url
    if not server.command:
        raise ToolServerError(f"tool server {server.name!r} uses stdio but names no command")
    from mcp import StdioServerParameters, stdio_client

    command = sys.executable if server.command in ("python", "python3") else server.command
    # The server inherits PATH and the like but not the runner's secrets: only what the spec names.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "PYTHONPATH") if key in os.environ}
    env.update(server.env)
    return stdio_client(
        StdioServerParameters(command=command, args=list(server.args), env=env), errlog=errlog
    )


def _as_result(answer: CallToolResult) -> ToolResult:
    from mcp.types import TextContent

    parts: list[str] = []
    for block in answer.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    text = "\n".join(parts)
    if not text and answer.structured_content is not None:
        text = json.dumps(answer.structured_content)
    if len(text) > MAX_RESULT_CHARACTERS:
        text = text[:MAX_RESULT_CHARACTERS] + f"\n[truncated at {MAX_RESULT_CHARACTERS} characters]"
    return ToolResult(text, is_error=answer.is_error, structured=answer.structured_content)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def tool_server_specs(run: AgentRun) -> tuple[ToolServerSpec, ...]:
    """The run's MCP servers in the runner's terms."""
    servers = []
    for tool in run.spec.tools or []:
        allowed = tuple(tool.allowed_tools or ())
        if tool.stdio is not None:
            servers.append(
                ToolServerSpec(
                    name=tool.name,
                    transport="stdio",
                    command=tool.stdio.command,
                    args=tuple(tool.stdio.args or ()),
                    env=dict(tool.stdio.env or {}),
                    allowed_tools=allowed,
                )
            )
        else:
            servers.append(
                ToolServerSpec(name=tool.name, transport="http", url=tool.url, allowed_tools=allowed)
            )
    return tuple(servers)
