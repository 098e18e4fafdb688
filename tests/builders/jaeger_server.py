"""A real Jaeger (the all-in-one program, built from the Go module proxy like the control plane and
cached): OTLP/HTTP in, the query API out, spans in memory, every port on 127.0.0.1 and chosen free."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.builders.processes import free_port, wait_for_port
from tests.builders.redis_server import real_clock_environment

from jesus.devcluster import ensure_tool

# Jaeger v2 is an OpenTelemetry Collector: a pipeline from the OTLP receiver to memory storage, and the
# query extension over the same storage. Its own defaults bind the query ports on every interface, and
# its metrics on 8888: here everything is explicit, on loopback, and its own telemetry is off.
CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerServer:
    """One Jaeger process; `start`, then `otlp_endpoint` for the programs and `trace` to read back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.otlp_port, self.query_port, self.query_grpc_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "jaeger.log"

    @property
    def otlp_endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT is set to (OTLP/HTTP; the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    def start(self) -> None:
        """Build (once, cached) and start Jaeger; return when both its ports answer."""
        binary = ensure_tool("jaeger")
        config = self.directory / "jaeger.yaml"
        config.write_text(
            CONFIG.format(
                otlp_port=self.otlp_port, query_port=self.query_port, query_grpc_port=self.query_grpc_port
            )
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Jaeger traces itself to a collector on 4317 by default: not here.
                env={**real_clock_environment(), "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"},
                cwd=self.directory,
            )
        try:
            wait_for_port(self.query_port, self.process, what="Jaeger's query API")
            wait_for_port(self.otlp_port, self.process, what="Jaeger's OTLP receiver")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as the query API gives it (spans, processes), None while it has no span."""
        url = f"http://127.0.0.1:{self.query_port}/api/traces/{trace_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = body.get("data") or []
        return data[0] if data else None

    def wait_for_trace(
        self, trace_id: str, done: Any, *, timeout: float = 60, what: str = "the trace"
    ) -> dict[str, Any]:
        """Poll until `done(trace)` holds; fail naming `what` with the last trace seen."""
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            seen = self.trace(trace_id)
            if seen is not None and done(seen):
                return seen
            time.sleep(0.5)
        names = sorted(s["operationName"] for s in (seen or {}).get("spans", []))
        raise AssertionError(f"timed out after {timeout}s waiting for {what} {trace_id}; spans seen: {names}")
