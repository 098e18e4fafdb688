"""`jesus crds`: write the CustomResourceDefinitions generated from the API models to crds/.

Writes crds/<plural>.jesus.dev.yaml for every kind, generated from the pydantic models; --check
compares instead of writing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jesus.api.crd import generate_crd_files
from jesus.cli import CommandError, command_parser

DEFAULT_DIRECTORY = Path("crds")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `crds` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help="folder to write the CRDs to (default: crds)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file in the folder differs from what the models generate",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) the generated CRD files."""
    directory: Path = args.output_dir
    files = generate_crd_files()
    if args.check:
        stale = [name for name, text in files.items() if _read(directory / name) != text]
        for name in stale:
            print(f"{directory / name}: differs from the models; run `jesus crds`", file=sys.stderr)
        return 1 if stale else 0
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = directory / name
            if _read(path) != text:
                path.write_text(text, encoding="utf-8")
                print(f"Wrote {path}")
    except OSError as exc:
        raise CommandError(f"cannot write CRDs to {directory}: {exc.strerror or exc}") from exc
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None
