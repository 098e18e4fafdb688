"""A real PostgreSQL server (Debian's `postgresql` package) for the archive's tests: an unprivileged
cluster made by `initdb` in a temporary folder, started by `pg_ctl` on a free loopback port, with trust
authentication and no fsync (nothing here outlives the test session). One database per test."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from tests.builders.processes import free_port
from tests.builders.redis_server import real_clock_environment

SUPERUSER = "jesus"
SERVICE_USER = "postgres"  # the Debian package's account; initdb refuses to run as root


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make packages` (Debian's postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    """One PostgreSQL cluster; `start` makes and starts it, `stop` stops it (`start` again restarts it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.port = free_port()
        self.bin = postgres_bin()

    def _as_service_user(self, *command: str) -> list[str]:
        if os.geteuid() != 0:
            return list(command)
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", SERVICE_USER, "--", *command]

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            self._as_service_user(*command),
            capture_output=True,
            text=True,
            env=real_clock_environment(),
            cwd=self.directory,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> None:
        """Create the cluster (first time) and start it, waiting until it accepts connections."""
        if not self.data.exists():
            self.sockets.mkdir(parents=True, exist_ok=True)
            self.data.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(self.directory, SERVICE_USER)
                for path in (self.data, self.sockets):
                    shutil.chown(path, SERVICE_USER)
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "server.log"),
            "-w", "-t", "60", "-o",
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open sessions are cut off, as when a database goes away)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def postmaster_pid(self) -> int:
        """The running server's first process (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        """The URL the archive is given."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database's URL."""
        name = f"archive_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        """The server's log, for a failed test's message."""
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started server in a folder of its own, stopped and removed after. Not under pytest's tmp_path:
    run as root, the server runs as Debian's postgres account, which cannot enter pytest's private
    folders."""
    directory = Path(tempfile.mkdtemp(prefix="jesus-postgres-"))
    server = PostgresServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
