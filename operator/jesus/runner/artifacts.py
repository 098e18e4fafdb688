"""Where a run's artifacts go: an interface, and a directory (or mounted volume) implementation.

An S3-compatible store implements the same protocol later; the runner only ever calls `put`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jesus.api.objects import content_digest

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """A stored artifact: its name, where it is, its size and sha256 digest (`sha256:<hex>`)."""

    name: str
    uri: str
    size_bytes: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view in the shape of AgentRun status `artifacts`."""
        return {"name": self.name, "uri": self.uri, "sizeBytes": self.size_bytes, "digest": self.digest}


class ArtifactStore(Protocol):
    """Stores the artifacts of one run under plain file names."""

    def put(self, name: str, content: bytes) -> StoredArtifact:
        """Store `content` as `name`, replacing an earlier artifact of that name."""
        ...


def put_text(store: ArtifactStore, name: str, text: str) -> StoredArtifact:
    """Store text as UTF-8."""
    return store.put(name, text.encode("utf-8"))


def to_json(value: Any) -> str:
    """A JSON document, indented and with sorted keys so equal content has equal digests."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def put_json(store: ArtifactStore, name: str, value: Any) -> StoredArtifact:
    """Store a JSON document (see `to_json`)."""
    return put_text(store, name, to_json(value))


class DirectoryArtifactStore:
    """Artifacts as files in one directory (a local folder or a mounted volume)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, name: str, content: bytes) -> StoredArtifact:
        """Write the file atomically (temporary file, then rename), so readers never see half of it."""
        if not _SAFE_NAME.match(name):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        temporary = self.root / f".{name}.partial"
        temporary.write_bytes(content)
        os.replace(temporary, target)
        return StoredArtifact(
            name=name,
            uri=target.resolve().as_uri(),
            size_bytes=len(content),
            digest=content_digest(content),
        )
