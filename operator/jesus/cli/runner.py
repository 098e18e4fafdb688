"""`jesus runner`: what the runner Job's container runs (configured entirely by its environment)."""

from __future__ import annotations

import argparse
import asyncio
import os

from jesus.cli import CommandError, command_parser


def _run(_: argparse.Namespace) -> int:
    from jesus.redaction import RedactionConfig, RedactionConfigError, install_log_redaction
    from jesus.runner.pod import PodEnvironmentError, run_pod

    try:
        redaction = RedactionConfig.from_environ(os.environ)
    except RedactionConfigError:  # run_pod refuses the run and says why, in the run's record
        redaction = RedactionConfig()
    install_log_redaction(redaction.patterns_only().redactor())

    try:
        return asyncio.run(run_pod(dict(os.environ)))
    except PodEnvironmentError as exc:
        raise CommandError(str(exc)) from exc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jesus runner`."""
    parser = command_parser(subparsers, __doc__)
    parser.set_defaults(handler=_run)
