"""Fixtures of the runner tests: a workspace with files, and the example tool server over HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.builders.processes import free_port, wait_for_port

from jesus.runner.tools import ToolServerSpec

REPO = Path(__file__).resolve().parents[3]
WORKSPACE_SERVER = REPO / "examples" / "tools" / "workspace_server.py"
MISBEHAVING_SERVER = Path(__file__).resolve().parent / "servers" / "misbehaving_server.py"


def workspace_server(root: Path, *allowed: str, timeout_seconds: float | None = None) -> ToolServerSpec:
    """The example workspace server over stdio, rooted at `root`, limited to `allowed` tools (all if none)."""
    spec = ToolServerSpec(
        name="workspace",
        transport="stdio",
        command=sys.executable,
        args=(str(WORKSPACE_SERVER), "--root", str(root)),
        allowed_tools=allowed,
    )
    return spec if timeout_seconds is None else replace(spec, timeout_seconds=timeout_seconds)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A directory with a few text files for the workspace tool server."""
    root = tmp_path / "workspace"
    (root / "notes").mkdir(parents=True)
    (root / "README.md").write_text("# Project\n\nThe launch is on Friday.\n")
    (root / "notes" / "todo.txt").write_text("ship the router\nwrite the docs\nship the runner\n")
    return root


@pytest.fixture
def workspace_http_url(workspace: Path) -> Iterator[str]:
    """The example workspace server serving streamable HTTP; yields its MCP endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(WORKSPACE_SERVER), "--root", str(workspace), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, what="the workspace server", timeout=20)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
