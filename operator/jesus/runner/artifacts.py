"""Where a run's artifacts go: an interface, a directory (or mounted volume) implementation for
`jesus run`, and the S3 uploader a runner pod uses with the upload grant the operator handed it.

The runner only ever calls `put`. In a pod it holds no storage credential: the grant (a pre-signed
POST policy for its attempt's prefix, `jesus.logic.artifacts`) is all it has (ADR 0030).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from jesus.api.objects import content_digest
from jesus.logic.artifacts import ARTIFACT_NAME, UploadGrant, artifact_uri, compress, object_key

_SAFE_NAME = ARTIFACT_NAME
UPLOAD_TIMEOUT_SECONDS = 60.0


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


class ArtifactUploadError(OSError):
    """The S3 server refused or never answered an upload; the message names the artifact."""


class S3GrantArtifactStore:
    """Artifacts as gzip objects in S3, uploaded with the attempt's grant: content-addressed by the
    sha256 of the uncompressed bytes, under the grant's prefix. Holds no credential."""

    def __init__(self, grant: UploadGrant, client: httpx.Client | None = None) -> None:
        self.grant = grant
        self._client = client or httpx.Client(timeout=UPLOAD_TIMEOUT_SECONDS)

    def put(self, name: str, content: bytes) -> StoredArtifact:
        """Upload `content` (gzip) as `<prefix><sha256>.gz`; its entry names it by `name`."""
        if not _SAFE_NAME.match(name):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        digest = content_digest(content)
        key = object_key(self.grant.prefix, digest)
        blob = compress(content)
        if len(blob) > self.grant.max_bytes:
            raise ArtifactUploadError(
                f"artifact {name} is {len(blob)} bytes compressed, over the grant's {self.grant.max_bytes}"
            )
        try:
            response = self._client.post(
                self.grant.url,
                data={"key": key, **self.grant.fields},
                files={"file": (name + ".gz", blob, "application/gzip")},
            )
        except httpx.HTTPError as exc:
            raise ArtifactUploadError(
                f"artifact {name} could not be uploaded to {self.grant.url}: {exc}"
            ) from exc
        if response.status_code not in (200, 201, 204):
            raise ArtifactUploadError(
                f"artifact {name}: the S3 server refused the upload "
                f"(HTTP {response.status_code}: {response.text[:300]})"
            )
        return StoredArtifact(
            name=name, uri=artifact_uri(self.grant.bucket, key), size_bytes=len(content), digest=digest
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
