"""Facts about plain Kubernetes objects that the pure builders and the cluster client share: the JSON
type, controller owner references, names bounded with a digest, and content digests.

They live in the API layer, not in `jesus.kube`, because the pure manifest builders in `jesus.logic`
need them and may not import the cluster client's package.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]
"""A Kubernetes object (or a part of one) as the API server's JSON."""

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
"""The form of every digest the platform writes: the algorithm, a colon, the hex digest."""

NAME_LIMIT = 63
"""DNS-1123/1035 labels, label values and Service names are at most this long."""

_SHORT_DIGEST = 8  # hex characters of the digest a shortened name keeps


def content_digest(content: bytes) -> str:
    """The sha256 digest of `content` as `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def spec_digest(value: Any) -> str:
    """The digest of `value`'s canonical JSON (sorted keys, no whitespace), as `sha256:<hex>`.

    Equal values give equal digests whatever their key order, so a digest says whether what was
    decided (a run's spec, a built child) changed.
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return content_digest(canonical.encode("utf-8"))


def bounded_name(base: str, *, suffix: str = "", limit: int = NAME_LIMIT, key: str | None = None) -> str:
    """`base-suffix` (or `base`), shortened to at most `limit` characters when it would be longer.

    A shortened name keeps the start of `base`, then 8 hex characters of the digest of `key` (the
    full name it stands for; `base` by default), then the suffix, so two long names that share a
    prefix stay apart and the same input always gives the same name. Dots and dashes are not left
    at the cut, so a DNS name stays valid.
    """
    full = f"{base}-{suffix}" if suffix else base
    if len(full) <= limit:
        return full
    digest = hashlib.sha256((base if key is None else key).encode()).hexdigest()[:_SHORT_DIGEST]
    tail = f"-{digest}-{suffix}" if suffix else f"-{digest}"
    return base[: max(limit - len(tail), 0)].rstrip("-.") + tail


def owner_reference(owner: Mapping[str, Any]) -> JsonObject:
    """A controller ownerReference to `owner` (its JSON, or at least apiVersion, kind, metadata.name
    and metadata.uid), so garbage collection removes the children with it."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Ownership(enum.StrEnum):
    """Who controls a live object that has the name of a child we want."""

    OURS = "Ours"
    """Controlled by the owner we build for."""
    ORPHAN = "Orphan"
    """Controlled by nobody: free to adopt."""
    FOREIGN = "Foreign"
    """Controlled by another object: left alone, and the conflict reported."""


def ownership(live: Mapping[str, Any], owner_uid: str | None) -> Ownership:
    """Whether `live` is controlled by the object with `owner_uid`, by nobody, or by someone else.

    Only controller references count: another object may hold a plain ownerReference (to be
    garbage-collected with it) without controlling the child.
    """
    controllers = [
        ref for ref in live.get("metadata", {}).get("ownerReferences") or [] if ref.get("controller")
    ]
    if not controllers:
        return Ownership.ORPHAN
    if owner_uid is not None and any(ref.get("uid") == owner_uid for ref in controllers):
        return Ownership.OURS
    return Ownership.FOREIGN


def controller_of(live: Mapping[str, Any]) -> str:
    """ "Kind name" of the object that controls `live`, for messages ("nobody" when none does)."""
    for ref in live.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')} {ref.get('name')}"
    return "nobody"
