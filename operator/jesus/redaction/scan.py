"""The sanitize gate's scan: what the redaction service would redact in files, and where.

A finding says the file, line, column and kind, never the text found (the report goes to CI logs and
pull-request comments). The gate fails closed: what it cannot read as text (binary, not UTF-8, too
large, not a regular file) is reported as not scanned, never skipped in silence. What it flags is what
the redaction service redacts, less the placeholders standards reserve for examples
(`is_example_value`).
"""

from __future__ import annotations

import bisect
import fnmatch
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jesus.redaction.text import Finding, PresidioRedactor

# Larger files are not scanned (and so fail the gate): a spec, a lesson or a reflection is far smaller.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
# Folders no one reviews as content: version control's own.
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn"})


# What the redaction service redacts to be safe but a gate must not fail on (docs/redaction.md, "The
# sanitize gate"): values reserved for examples by their standards, and text that only refers to one.
# Addresses for loopback, "any", link-local (the same on every machine) and documentation (RFC 1122,
# 3927, 4291, 5737, 3849). Private ranges are flagged: they map a site's own network.
_EXAMPLE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "0.0.0.0/32",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "169.254.0.0/16",
        "::1/128",
        "::/128",
        "fe80::/10",
        "2001:db8::/32",
    )
)
# Mail domains reserved for examples (RFC 2606, 6761).
_EXAMPLE_DOMAIN = re.compile(
    r"@(?:[^@\s]+\.)?(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.IGNORECASE
)
# A run of digits with at most dots or slashes is a number, not a telephone number as written.
_BARE_NUMBER = re.compile(r"[\d./]+")
# A reference to a secret (a variable, a command's output, a template's field), not the secret, or a
# placeholder written in angle brackets (`<password>`).
_REFERENCE = re.compile(r"\$[({A-Za-z_]|\{|<[^<>\s]+>$")
# The kinds a secret is found as (jesus.redaction.patterns), where such a reference can stand.
_SECRET_KINDS = frozenset({"secret", "url-password", "authorization", "bearer-token"})


def is_example_value(kind: str, text: str) -> bool:
    """Whether a finding's text is a placeholder the gate lets pass: a documentation or loopback
    address, an address at a reserved mail domain, a bare number taken for a telephone number, a
    reference to a secret or a `<placeholder>` instead of one."""
    text = text.strip()
    if kind == "ip-address":
        try:
            address = ipaddress.ip_interface(text.strip("[]")).ip  # an address or one in CIDR form
        except ValueError:
            return False
        return any(address.version == n.version and address in n for n in _EXAMPLE_NETWORKS)
    if kind == "email":
        return _EXAMPLE_DOMAIN.search(text) is not None
    if kind == "phone":
        return _BARE_NUMBER.fullmatch(text) is not None
    if kind in _SECRET_KINDS:
        return _REFERENCE.match(text) is not None
    return False


class ScanPathError(ValueError):
    """A path given to scan does not exist; names it."""


@dataclass(frozen=True, slots=True)
class Located:
    """A finding's place in its file (line and column from 1) and its kind."""

    path: str
    line: int
    column: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind}"


@dataclass(frozen=True, slots=True)
class NotScanned:
    """A file the gate could not read as text, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: not scanned: {self.reason}"


@dataclass(slots=True)
class ScanReport:
    """What a scan found: findings, files it could not scan, and how many files it read."""

    findings: list[Located] = field(default_factory=list)
    not_scanned: list[NotScanned] = field(default_factory=list)
    scanned: int = 0

    @property
    def clean(self) -> bool:
        """Nothing found and nothing left unread."""
        return not self.findings and not self.not_scanned


def locate(text: str, findings: Iterable[Finding]) -> list[tuple[int, int, str]]:
    """Each finding's line and column (from 1) in `text`, with its kind; lines end at \\n (a \\r before
    it belongs to the line, as an editor counts)."""
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    located = []
    for finding in findings:
        line = bisect.bisect_right(starts, finding.start) - 1
        located.append((line + 1, finding.start - starts[line] + 1, finding.kind))
    return located


def files_under(paths: Sequence[Path], excludes: Sequence[str] = ()) -> Iterator[Path]:
    """Every file under `paths` (a file itself, a folder recursively, sorted), skipping version
    control's folders and what matches an `excludes` glob (on the path or the name). Links to folders
    are not followed; one to a folder outside `paths` is listed, to be reported. ScanPathError when a
    path does not exist."""
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise ScanPathError(f"{path}: no such file or folder")

    roots = [path.resolve() for path in paths if path.is_dir() and not path.is_symlink()]

    def covered(link: Path) -> bool:
        target = link.resolve()
        return any(target == root or target.is_relative_to(root) for root in roots)

    def excluded(path: Path) -> bool:
        return any(fnmatch.fnmatch(str(path), glob) or fnmatch.fnmatch(path.name, glob) for glob in excludes)

    for path in paths:
        if excluded(path):
            continue
        if path.is_symlink() or not path.is_dir():
            yield path
            continue
        for folder, folders, names in os.walk(path):
            kept = [f for f in folders if f not in SKIPPED_FOLDERS and not excluded(Path(folder, f))]
            # A link to a folder is not walked (it could loop or leave the tree). One into a folder this
            # scan walks anyway is covered there; any other is listed, so the scan reports it as not
            # scanned rather than dropping it in silence.
            links = [f for f in kept if Path(folder, f).is_symlink()]
            listed = [f for f in links if not covered(Path(folder, f))]
            folders[:] = sorted(f for f in kept if f not in links)
            for name in sorted([*names, *listed]):
                if not excluded(Path(folder, name)):
                    yield Path(folder, name)


def read_text(path: Path, max_bytes: int) -> str | NotScanned:
    """The file's text, or why it cannot be scanned. Only regular files are opened (a FIFO or a device
    would block or never end), through a symbolic link too, and only up to `max_bytes`."""
    shown = str(path)
    try:
        info = path.stat()  # a link is read through to a regular file (a chart's link to the CRDs)
    except FileNotFoundError:
        return NotScanned(shown, "a symbolic link to nothing")
    if not stat.S_ISREG(info.st_mode):
        return NotScanned(shown, "not a regular file (a folder through a link, a FIFO, a device)")
    if info.st_size > max_bytes:
        return NotScanned(shown, f"larger than {max_bytes} bytes ({info.st_size})")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since it was measured
        return NotScanned(shown, f"larger than {max_bytes} bytes")
    if b"\0" in data:
        return NotScanned(shown, "binary (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return NotScanned(shown, f"not UTF-8 text (byte {exc.start})")


def scan(
    paths: Sequence[Path],
    redactor: PresidioRedactor,
    *,
    excludes: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ScanReport:
    """Scan every file under `paths` with `redactor`'s detectors."""
    report = ScanReport()
    for path in files_under(paths, excludes):
        try:
            text = read_text(path, max_bytes)
        except OSError as exc:
            report.not_scanned.append(NotScanned(str(path), exc.strerror or type(exc).__name__))
            continue
        if isinstance(text, NotScanned):
            report.not_scanned.append(text)
            continue
        report.scanned += 1
        found = [f for f in redactor.analyze(text) if not is_example_value(f.kind, text[f.start : f.end])]
        for line, column, kind in locate(text, found):
            report.findings.append(Located(str(path), line, column, kind))
    return report
