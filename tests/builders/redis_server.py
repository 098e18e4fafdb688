"""A real `redis-server` (Debian's package) for the tests: on a free port, bound to 127.0.0.1, no
persistence of its own, in a folder of its own; stopped, paused, or restarted with or without its data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import redis
from tests.builders.processes import free_port, wait_for_port

REDIS_SERVER = "redis-server"


def real_clock_environment() -> dict[str, str]:
    """This process's environment without libfaketime (the date guard runs the tests under it): Redis's
    allocator and libfaketime clash, and the stores' expiries are relative, so Redis's clock need not
    agree with the tests'."""
    return {
        name: value
        for name, value in os.environ.items()
        if name != "LD_PRELOAD" and not name.startswith(("FAKETIME", "DONT_FAKE"))
    }


class RedisServer:
    """One redis-server process, started by `start` and stopped by `stop` (the fixture stops it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL routers are given."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port and folder: a restart keeps what `stop(keep_data=True)`
        saved, and nothing else)."""
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise RuntimeError(
                f"{REDIS_SERVER} is not installed: run `make packages` (Debian's redis-server)"
            )
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", "",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=real_clock_environment()
        )
        wait_for_port(self.port, self.process, what=REDIS_SERVER)

    def client(self) -> redis.Redis:
        """A plain client, for the tests to look into (or spoil) what the routers keep."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server; with `keep_data`, save what it holds first, so that `start` loads it (a Redis
        with persistence); without, a restart comes back empty (one without)."""
        if self.process is None:
            return
        if keep_data:
            with self.client() as client:
                client.save()
        else:
            (self.directory / "dump.rdb").unlink(missing_ok=True)
        self.resume()
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def pause(self) -> None:
        """Freeze the server: it still accepts connections but answers nothing (a hung Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
