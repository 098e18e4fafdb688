"""Local servers in child processes: a free port to give them, and waiting until they listen."""

from __future__ import annotations

import socket
import subprocess
import time

from jesus.devcluster.controlplane import free_port

__all__ = ["free_port", "wait_for_port"]


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
