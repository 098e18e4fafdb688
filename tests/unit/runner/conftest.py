"""Fixtures of the runner tests: a workspace with files, and the example tool server over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
WORKSPACE_SERVER = REPO / "examples" / "tools" / "workspace_server.py"
MISBEHAVING_SERVER = Path(__file__).resolve().parent / "servers" / "misbehaving_server.py"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A directory with a few text files for the workspace tool server."""
    root = tmp_path / "workspace"
    (root / "notes").mkdir(parents=True)
    (root / "README.md").write_text("# Project\n\nThe launch is on Friday.\n")
    (root / "notes" / "todo.txt").write_text("ship the router\nwrite the docs\nship the runner\n")
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def workspace_http_url(workspace: Path) -> Iterator[str]:
    """The example workspace server serving streamable HTTP; yields its MCP endpoint URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(WORKSPACE_SERVER), "--root", str(workspace), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the workspace server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
