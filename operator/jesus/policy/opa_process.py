"""Running the real OPA binary as a server on loopback (tests, benchmarks, `jesus` tooling).

The chart runs OPA as a sidecar; locally this starts `opa run --server` over the policy directory on
127.0.0.1 and a free port, waits until it is healthy, and always stops it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from jesus.policy.decision import PolicyLoadError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OpaServerProcess:
    """`opa run --server` over a policy directory, as a context manager."""

    def __init__(
        self, binary: Path, policy_dir: Path, *, port: int | None = None, log_path: Path | None = None
    ):
        self.binary = binary
        self.policy_dir = policy_dir
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_seconds: float = 30.0) -> None:
        """Start the server and wait until it reports healthy; raises PolicyLoadError if it exits (a
        policy that does not compile) or never becomes healthy."""
        command = [
            str(self.binary),
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "error",
            "--skip-version-check",
            "--ignore",
            "*_test.rego",
            str(self.policy_dir),
        ]
        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE)
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise PolicyLoadError(
                    f"the OPA server exited with code {self._process.returncode}: {stderr.strip()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == httpx.codes.OK:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise PolicyLoadError(
            f"the OPA server on {self.url} did not become healthy within {timeout_seconds:g} s"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> OpaServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
