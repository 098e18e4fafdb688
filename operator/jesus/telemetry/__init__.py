"""Traces and logs of the three programs (operator, router, runner): one configuration, one schema.

Tracing is configured by the standard `OTEL_*` environment variables and is off unless an OTLP endpoint
is given (`jesus.telemetry.tracing`); log lines are JSON of one schema, or text on a terminal
(`jesus.telemetry.logs`). See docs/observability.md and ADR 23.
"""

from jesus.telemetry.logs import (
    LOG_SCHEMA,
    JsonLogFormatter,
    TextLogFormatter,
    configure_logging,
    log_fields,
)
from jesus.telemetry.tracing import (
    TracingConfig,
    configure_tracing,
    forwarded_environment,
    shutdown_tracing,
    start_pinned_span,
    tracing_config,
)

__all__ = [
    "LOG_SCHEMA",
    "JsonLogFormatter",
    "TextLogFormatter",
    "TracingConfig",
    "configure_logging",
    "configure_tracing",
    "forwarded_environment",
    "log_fields",
    "shutdown_tracing",
    "start_pinned_span",
    "tracing_config",
]
