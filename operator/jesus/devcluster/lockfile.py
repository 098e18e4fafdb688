"""The dependency locks in requirements/: what they pin, and whether they still agree with pyproject.toml.

The locks are `uv pip compile --universal --generate-hashes` output (ADR 20): one `name==version`
line per package with its hashes, readable by pip and uv alike. `make setup` installs the dev lock, the
image the runtime lock. A lock that no longer satisfies pyproject.toml (a range raised, a dependency
added) would install something other than what the project asks for, so the image build refuses it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

RUNTIME_LOCK = Path("requirements/runtime.lock")
DEV_LOCK = Path("requirements/dev.lock")
UPDATE_HINT = "run `make lock` to update the locks (docs/image.md)"

# A pin starts a line: `name==version`, then optionally ` ; marker`, then ` \` before the hashes.
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]*))?\\?\s*$"
)
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})\b")


class LockError(Exception):
    """A lock is unreadable or disagrees with pyproject.toml; the message names the file."""


@dataclass(frozen=True)
class Pin:
    """One locked package: canonical name, exact version, sha256 digests of its files, environment marker."""

    name: str
    version: str
    hashes: tuple[str, ...]
    marker: Marker | None = None

    def applies(self, environment: dict[str, str]) -> bool:
        """Whether this pin is installed on an interpreter with these marker values."""
        return self.marker is None or self.marker.evaluate(environment)


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock file by canonical name; every pin must carry at least one sha256 hash."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise LockError(f"{path}: cannot read the lock ({exc.strerror}); {UPDATE_HINT}") from exc
    return parse_lock(text, path)


def parse_lock(text: str, path: Path) -> dict[str, Pin]:
    """Parse lock text (see `read_lock`); `path` only names the file in errors."""
    pins: dict[str, Pin] = {}
    current: tuple[str, str, int, Marker | None] | None = None
    hashes: list[str] = []

    def finish() -> None:
        if current is None:
            return
        name, version, line, marker = current
        if not hashes:
            raise LockError(f"{path}:{line}: {name}=={version} has no --hash; {UPDATE_HINT}")
        previous = pins.get(name)
        if previous is not None and previous.version != version:
            # A universal lock may pin per platform; this project's locks pin one version each.
            raise LockError(
                f"{path}:{line}: {name} is pinned twice ({previous.version} and {version}); {UPDATE_HINT}"
            )
        if previous is not None and previous.marker != marker:
            raise LockError(f"{path}:{line}: {name} is pinned twice with different markers; {UPDATE_HINT}")
        pins[name] = Pin(
            name, version, tuple(sorted({*hashes, *(previous.hashes if previous else ())})), marker
        )

    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PIN.match(line)
        if match:
            finish()
            try:
                Version(match["version"])
                marker = Marker(match["marker"].strip()) if match["marker"] else None
            except InvalidVersion as exc:
                raise LockError(f"{path}:{number}: {match['version']!r} is not a version") from exc
            except InvalidMarker as exc:
                raise LockError(f"{path}:{number}: {match['marker'].strip()!r} is not a marker") from exc
            current, hashes = (canonicalize_name(match["name"]), match["version"], number, marker), []
        elif line[:1].isspace() and current is not None:
            hashes.extend(m["digest"] for m in _HASH.finditer(line))
        elif stripped.startswith("-"):
            raise LockError(f"{path}:{number}: options ({stripped.split()[0]}) do not belong in a lock")
        else:
            raise LockError(f"{path}:{number}: not a `name==version` pin: {stripped[:80]!r}")
    finish()
    if not pins:
        raise LockError(f"{path}: no pins in the lock; {UPDATE_HINT}")
    return pins


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """The requirements pyproject.toml declares: its dependencies, plus the optional groups `extras`."""
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise LockError(f"{pyproject}: cannot read [project] ({exc})") from exc
    declared = list(project.get("dependencies", []))
    for extra in extras:
        declared += project.get("optional-dependencies", {}).get(extra, [])
    requirements = []
    for text in declared:
        try:
            requirements.append(Requirement(text))
        except InvalidRequirement as exc:
            raise LockError(f"{pyproject}: {text!r} is not a requirement ({exc})") from exc
    return requirements


def check_lock(pyproject: Path, lock: Path, extras: tuple[str, ...] = ()) -> dict[str, Pin]:
    """Fail unless every requirement of pyproject.toml (with `extras`) is pinned in `lock` within range."""
    pins = read_lock(lock)
    problems = []
    for requirement in project_requirements(pyproject, extras):
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name} is required by {pyproject} but not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{requirement.name}=={pin.version} does not satisfy {requirement} from {pyproject}"
            )
    if problems:
        raise LockError(f"{lock} is out of date: " + "; ".join(problems) + f"; {UPDATE_HINT}")
    return pins
