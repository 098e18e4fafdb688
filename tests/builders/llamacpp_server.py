"""A real llama.cpp server for the tests: llama-cpp-python's OpenAI-compatible server from the cache that
`jesus dev build --llamacpp` fills (`make tools` does), serving the tiny random-weight model on a free
port of 127.0.0.1, with the machine's real clock (the date guard's faketime stays out of it)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.builders.processes import free_port
from tests.builders.redis_server import real_clock_environment

from jesus.devcluster import llamacpp

ALIAS = "tiny-llama"
# Loading the half-megabyte model takes well under a second; the interpreter and its imports the rest.
START_SECONDS = 90


class LlamaCppServer:
    """One server process, started by `start` and stopped by `stop`."""

    def __init__(self, directory: Path, *, context: int = 2048) -> None:
        self.directory = directory
        self.context = context
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL adapters are given."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log(self) -> Path:
        return self.directory / "llamacpp.log"

    def start(self) -> None:
        if not llamacpp.is_built() or not llamacpp.model_path().is_file():
            raise RuntimeError(
                "the llama.cpp server is not built: run `make tools` (jesus dev build --llamacpp), "
                f"which builds it once into {llamacpp.server_dir()}"
            )
        command = llamacpp.server_command(self.port, alias=ALIAS, context=self.context)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=real_clock_environment()
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited {self.process.returncode}:\n{self.tail()}")
            if self.models() is not None:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the llama.cpp server did not answer in {START_SECONDS} s:\n{self.tail()}")

    def models(self) -> list[str] | None:
        """The model ids the server lists, or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                return [m["id"] for m in json.loads(response.read())["data"]]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
