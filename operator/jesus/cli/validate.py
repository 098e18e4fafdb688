"""`jesus validate PATH...`: check spec files against the API schema and against each other, offline.

Checks jesus.dev spec files (files or folders, multi-document YAML; - reads stdin) against the same
schema the API server enforces, plus the rules only the whole set shows: references, dependency
cycles, look-alike API groups. Prints one line per problem, `file:line: Kind/name: field.path:
message`; exits 0 when valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jesus.cli import CommandError, command_parser
from jesus.specs import (
    Problem,
    Severity,
    SourceError,
    SpecPathError,
    load_documents,
    load_specs,
    parse_documents,
    validate_specs,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `validate` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="spec file or folder; - reads YAML from stdin"
    )
    parser.add_argument(
        "--output", "-o", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate the paths, print the problems, and return 0 (valid) or 1 (errors found)."""
    files = [p for p in args.paths if str(p) != "-"]
    try:
        spec_set = load_specs(files)
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    if len(files) != len(args.paths):  # `-`: YAML on stdin, e.g. from `kubectl kustomize`
        stdin = Path("<stdin>")
        spec_set.files.append(stdin)
        try:
            load_documents(parse_documents(sys.stdin.read(), stdin), spec_set)
        except SourceError as exc:
            spec_set.problems.append(Problem(file=stdin, line=exc.line, message=exc.message))
    problems = validate_specs(spec_set)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if args.output == "json":
        report = {
            "valid": not errors,
            "files": len(spec_set.files),
            "objects": len(spec_set.objects),
            "errors": len(errors),
            "warnings": len(problems) - len(errors),
            "problems": [p.to_json() for p in problems],
        }
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for problem in problems:
            print(problem.format())
        summary = (
            f"{len(spec_set.objects)} objects in {len(spec_set.files)} files: "
            f"{len(errors)} errors, {len(problems) - len(errors)} warnings"
        )
        print(summary, file=sys.stderr)
    return 1 if errors else 0
