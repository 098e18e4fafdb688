"""`jesus runner`: what the runner Job's container runs (configured entirely by its environment)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from jesus.cli import CommandError, command_parser


def _run(_: argparse.Namespace) -> int:
    from jesus.redaction import RedactionConfig, RedactionConfigError, install_log_redaction
    from jesus.runner.pod import PodEnvironmentError, run_pod
    from jesus.telemetry import configure_logging, configure_tracing, shutdown_tracing

    try:
        redaction = RedactionConfig.from_environ(os.environ)
    except RedactionConfigError:  # run_pod refuses the run and says why, in the run's record
        redaction = RedactionConfig()
    install_log_redaction(redaction.patterns_only().redactor())
    configure_logging(logging.INFO)
    tracing = configure_tracing("jesus-runner")
    try:
        return asyncio.run(run_pod(dict(os.environ)))
    except PodEnvironmentError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        # Bounded: a collector that cannot be reached loses the run's last spans, not the run's time.
        shutdown_tracing(tracing)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jesus runner`."""
    parser = command_parser(subparsers, __doc__)
    parser.set_defaults(handler=_run)
