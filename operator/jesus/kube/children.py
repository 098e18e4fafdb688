"""Idempotent creation of the children the operator owns (Jobs, Secrets, Deployments, Services).

Every child is created the same way: create it; when its name is taken, look at who controls the
object there (`jesus.api.objects.ownership`) and adopt it, bring it up to date, or leave it alone.
An object another owner controls is never touched: the caller reports it or waits for it to go.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jesus.api.objects import JsonObject, Ownership, controller_of, ownership
from jesus.kube.errors import ForeignChildError

Update = Callable[[Mapping[str, Any], Mapping[str, Any]], JsonObject | None]
"""(live, desired) -> the merge patch that brings a live child up to date, or None when it is."""


class ChildStore(Protocol):
    """What `ensure_child` needs of the cluster client (KubeClient has it)."""

    async def create_or_get(self, obj: JsonObject) -> tuple[JsonObject, bool]: ...

    async def patch(self, kind: str, namespace: str | None, name: str, patch: JsonObject) -> JsonObject: ...


@dataclass(frozen=True, slots=True)
class Child:
    """The live child and what was done to it."""

    live: JsonObject
    action: ChildAction

    @property
    def ours(self) -> bool:
        """Whether the child is controlled by the owner we asked for (now)."""
        return self.action is not ChildAction.FOREIGN

    def require_ours(self) -> JsonObject:
        """The live child; ForeignChildError when another owner controls it."""
        if not self.ours:
            metadata = self.live.get("metadata", {})
            raise ForeignChildError(
                str(self.live.get("kind")), str(metadata.get("name")), controller_of(self.live)
            )
        return self.live


class ChildAction(enum.StrEnum):
    """What `ensure_child` did."""

    CREATED = "Created"
    """Nothing had the name: the desired child was created."""
    ADOPTED = "Adopted"
    """An object without a controller had the name: it now carries our owner reference."""
    UPDATED = "Updated"
    """Our child differed from the desired one and was patched."""
    UNCHANGED = "Unchanged"
    """Our child is as desired (or is never updated once made)."""
    FOREIGN = "Foreign"
    """The name is taken by an object another owner controls; nothing was done."""


def adoption_patch(desired: Mapping[str, Any]) -> JsonObject:
    """The merge patch that makes an orphan ours: the desired child's labels and ownerReferences."""
    metadata = desired["metadata"]
    return {
        "metadata": {"labels": metadata.get("labels") or {}, "ownerReferences": metadata["ownerReferences"]}
    }


def _controller_uid(desired: Mapping[str, Any]) -> str:
    for ref in desired["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref["uid"])
    raise ValueError(f"{desired['kind']} {desired['metadata']['name']} has no controller ownerReference")


async def ensure_child(kube: ChildStore, desired: JsonObject, *, update: Update | None = None) -> Child:
    """Create `desired`, or adopt or update the live object of its name; never touch another owner's.

    `desired` carries a controller ownerReference to its owner. An orphan of that name is adopted
    (the desired labels and owner reference, with `update`'s patch if any); a child we control is patched when
    `update` says it differs (no `update`: children that never change once made, Jobs and Secrets).
    """
    owner_uid = _controller_uid(desired)
    live, created = await kube.create_or_get(desired)
    if created:
        return Child(live, ChildAction.CREATED)
    owned = ownership(live, owner_uid)
    if owned is Ownership.FOREIGN:
        return Child(live, ChildAction.FOREIGN)
    patch = update(live, desired) if update is not None else None
    if owned is Ownership.ORPHAN:
        adopt = adoption_patch(desired)
        patch = {**(patch or {}), "metadata": {**(patch or {}).get("metadata", {}), **adopt["metadata"]}}
    if patch is None:
        return Child(live, ChildAction.UNCHANGED)
    metadata = desired["metadata"]
    live = await kube.patch(desired["kind"], metadata.get("namespace"), metadata["name"], patch)
    return Child(live, ChildAction.ADOPTED if owned is Ownership.ORPHAN else ChildAction.UPDATED)
