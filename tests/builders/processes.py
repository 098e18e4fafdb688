"""Local servers in child processes: a free port to give them, waiting until they listen, and the
`jesus router` program itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jesus.devcluster.controlplane import free_port

__all__ = ["JESUS", "call_record", "free_port", "router_process", "wait_for_port"]

JESUS = Path(sys.executable).parent / "jesus"


def wait_for_port(port: int, process: subprocess.Popen[bytes], *, what: str, timeout: float = 60) -> None:
    """Return once something listens on 127.0.0.1:`port`; fail with the process's output (when piped)
    if it exits first or `timeout` seconds pass (then the process is killed first: reading the pipe of
    a process that is still running would wait for ever)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            exited = process.poll() is not None
            if exited or time.monotonic() > deadline:
                if not exited:
                    process.kill()
                    process.wait()
                output = process.stdout.read().decode() if process.stdout else ""
                state = f"exited with {process.returncode}" if exited else f"not listening after {timeout:g}s"
                raise RuntimeError(f"{what} did not start ({state}):\n{output}") from None
            time.sleep(0.05)


@contextmanager
def router_process(
    specs: Path,
    *,
    secrets_dir: Path,
    environment: Mapping[str, str],
    output: int = subprocess.DEVNULL,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`jesus router --specs specs` on a free port, with `environment` added to this process's; its URL
    and the process, terminated when the block ends. `output=subprocess.PIPE` keeps its log readable."""
    port = free_port()
    command = [
        str(JESUS),
        "router",
        "--specs",
        str(specs),
        "--port",
        str(port),
        "--secrets-dir",
        str(secrets_dir),
    ]
    process = subprocess.Popen(
        command, env={**os.environ, **environment}, stdout=output, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process, what="jesus router")
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(10)


def call_record(url: str, token: str) -> dict[str, Any]:
    """One chat completion through the router at `url` with a run's token; the router's call record
    (fails the test with the router's answer unless it is a 200)."""
    import httpx

    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["jesus"])
