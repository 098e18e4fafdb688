"""`jesus sanitize PATH...`: the sanitize gate, the redaction service's detectors over files.

Scans files and folders (specs, lessons, reflections, artifacts exported for a case study) with the
detectors the router and runner redact with: secrets and credentials, contact details, identifiers,
and with --names (or JESUS_REDACTION_NAMES=true) people's names as spaCy finds them, which flags many
a product name in technical text. Placeholders reserved for examples (documentation addresses,
example.com mail, a bare number) pass. A site's own patterns and allowed words come
from JESUS_REDACTION_PATTERNS and JESUS_REDACTION_ALLOW, as for the router. Prints one line per finding,
`file:line:column: KIND`, never the text found; a file it cannot read as text (binary, not UTF-8, too
large, not a regular file) is reported as not scanned. Exits 0 when clean, 1 on any
finding or file not scanned, 2 when a path does not exist or the settings are wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from jesus.cli import CommandError, command_parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `sanitize` sub-command."""
    from jesus.redaction.scan import DEFAULT_MAX_BYTES

    parser = command_parser(subparsers, __doc__)
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or folder to scan")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files and folders whose path or name matches (repeatable)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"larger files are reported as not scanned (default {DEFAULT_MAX_BYTES})",
    )
    parser.add_argument(
        "--names",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="look for people's names with spaCy too (default: JESUS_REDACTION_NAMES, else off)",
    )
    parser.add_argument(
        "--output", "-o", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Scan, print the findings, return 0 (clean) or 1 (findings or files not scanned)."""
    # Imported here: the redaction service loads Presidio (and spaCy, when names are looked for).
    from jesus.redaction import RedactionConfig, RedactionConfigError
    from jesus.redaction.scan import ScanPathError, scan

    if args.max_bytes < 1:
        raise CommandError(f"--max-bytes: must be at least 1, not {args.max_bytes}")
    try:
        config = RedactionConfig.from_environ(os.environ, names_default=False)
        if args.names is not None:
            config = dataclasses.replace(config, names=args.names)
        redactor = config.redactor()
        report = scan(args.paths, redactor, excludes=args.exclude, max_bytes=args.max_bytes)
    except (RedactionConfigError, ScanPathError) as exc:
        raise CommandError(str(exc)) from exc
    if args.output == "json":
        print(
            json.dumps(
                {
                    "clean": report.clean,
                    "scanned": report.scanned,
                    "findings": [
                        {"path": f.path, "line": f.line, "column": f.column, "kind": f.kind}
                        for f in report.findings
                    ],
                    "notScanned": [{"path": n.path, "reason": n.reason} for n in report.not_scanned],
                },
                indent=2,
            )
        )
    else:
        for line in [*report.findings, *report.not_scanned]:
            print(line)
        summary = (
            f"sanitize: {len(report.findings)} finding(s), {len(report.not_scanned)} file(s) not scanned, "
            f"{report.scanned} file(s) scanned"
        )
        print(summary, file=sys.stderr)
    return 0 if report.clean else 1
