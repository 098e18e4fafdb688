"""The dev S3-compatible server: SeaweedFS's `weed mini` on loopback, for artifacts (ADR 0030).

`weed` is built once from its pinned Go module (tools/seaweedfs) like the control plane's binaries.
Every port is chosen free and bound to 127.0.0.1; the S3 API requires a signature from the one
identity written to the config file here (the operator's credential), so a POST policy the operator
signed is checked by the server itself. Ready in a few seconds.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jesus.devcluster import processes
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.toolchain import Progress, _stderr_progress, ensure_tool

READY_TIMEOUT_SECONDS = 60.0
DEFAULT_BUCKET = "jesus-artifacts"


class S3ServerError(Exception):
    """The dev S3 server did not start; the message has its log's tail."""


@dataclass(frozen=True)
class S3Credential:
    """The operator's access key pair on the dev server."""

    access_key: str
    secret_key: str


class S3Server:
    """`weed mini` in `directory` (data, config, log), started by `start`, stopped by `stop`."""

    def __init__(self, directory: Path, *, die_with_parent: bool = False) -> None:
        self.directory = directory
        self.die_with_parent = die_with_parent
        self.port = 0
        self.credential = S3Credential("jesus-" + secrets.token_hex(6), secrets.token_urlsafe(30))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The S3 API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """What `weed` wrote."""
        return self.directory / "weed.log"

    def _write_config(self) -> Path:
        config = self.directory / "s3.json"
        identity = {
            "name": "jesus-operator",
            "credentials": [
                {"accessKey": self.credential.access_key, "secretKey": self.credential.secret_key}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}, indent=2))
        config.chmod(0o600)
        return config

    def start(self, progress: Progress = _stderr_progress) -> None:
        """Start `weed mini` and wait until its S3 API answers."""
        weed = ensure_tool("weed", progress)
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        # Below 55535: weed puts each gRPC port at its HTTP port + 10000.
        ports = {name: _low_free_port() for name in ("master", "volume", "filer", "s3")}
        self.port = ports["s3"]
        command = [
            str(weed),
            "mini",
            f"-dir={self.directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port + 10000}" for name, port in ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=processes.die_with_parent if self.die_with_parent else None,
            )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise S3ServerError(
                    f"weed exited with {self._process.returncode}:\n{processes.log_tail(self.log)}"
                )
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise S3ServerError(
            f"weed's S3 API did not answer within {READY_TIMEOUT_SECONDS:.0f}s:\n"
            f"{processes.log_tail(self.log)}"
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):  # nosec B310 - our loopback http URL
                return True
        except urllib.error.HTTPError:
            return True  # 403 without a signature: the API is up
        except OSError:
            return False

    def stop(self) -> None:
        """Stop `weed` (its process group)."""
        if self._process is not None:
            processes.terminate_popen(self._process)
            self._process = None


def _low_free_port() -> int:
    for _ in range(50):
        port = free_port()
        if port < 55535:
            return port
    raise S3ServerError("no free port below 55535 for weed (its gRPC ports are its HTTP ports + 10000)")
