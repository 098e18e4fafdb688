"""The `jesus` command line: one sub-command per module in this package.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`handler` (a function from the parsed arguments to an exit code) as a default. A command's module
docstring is its help: `command_parser` reads the one-line summary and the description from it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Sequence

# Modules under jesus.cli that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "dev",
    "crds",
    "validate",
    "run",
    "plan",
    "eval",
    "sanitize",
    "lessons",
    "router",
    "operator",
    "runner",
    "archive",
    "audit",
    "api",
    "get",
    "describe",
    "logs",
    "artifacts",
    "mcp",
)

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure the user can act on; printed as one line, without a traceback."""


# A command module's first docstring line: "`jesus NAME ARGS...`: what it does."
_SUMMARY = re.compile(r"`jesus (?P<name>[a-z-]+)[^`]*`: (?P<help>.+?)\.?$")


def command_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], doc: str | None
) -> argparse.ArgumentParser:
    """Add the sub-command a command module's docstring describes: its first line names the command and
    gives the one-line help, the paragraphs after it are the description `--help` shows."""
    summary, _, rest = inspect.cleandoc(doc or "").partition("\n")
    match = _SUMMARY.fullmatch(summary)
    if match is None:
        raise ValueError(f"a command docstring must start with '`jesus NAME ...`: help', not {summary!r}")
    description = " ".join(rest.split()) or None
    return subparsers.add_parser(match["name"], help=match["help"], description=description)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered (or just `only`).

    Commands import what they need at module level, some of it heavy (provider SDKs); loading only the
    command asked for keeps `jesus runner` in a pod and the other short commands quick to start.
    """
    parser = argparse.ArgumentParser(
        prog="jesus", description="Declarative GitOps control plane for AI agents on Kubernetes."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only in COMMAND_MODULES else COMMAND_MODULES:
        module = importlib.import_module(f"jesus.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments[0] if arguments and not arguments[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
