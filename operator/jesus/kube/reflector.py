"""List, then watch, one kind: keeps a caller's view of the cluster current (client-go's reflector).

The view is handed every object once after each list (`on_replace`, the whole current set) and every
change after it (`on_change`: ADDED, MODIFIED or DELETED with the object). The watch continues from
the last resourceVersion it saw, so nothing is missed between two watches; when that version is too
old (410 Gone) the kind is listed again. A failed request is retried after a growing pause, and the
view keeps what it had meanwhile: readers see the last known state, never an empty one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from jesus.api.objects import JsonObject
from jesus.kube.errors import KubeError, WatchExpiredError

log = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 30.0


class ListWatchClient(Protocol):
    """What a reflector (and a view that reads one object more) needs of the cluster: `KubeClient`."""

    async def list_at(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> tuple[list[JsonObject], str]:
        """Every object (with `labels`, when given) and the list's resourceVersion."""
        ...

    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        """The changes after `resource_version` (of objects with `labels`, when given)."""
        ...

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        """One object, or None."""
        ...


@dataclass
class Reflector:
    """Keeps one kind of one namespace (all namespaces when None) flowing into a view."""

    client: ListWatchClient
    kind: str
    namespace: str | None
    on_replace: Callable[[list[JsonObject]], Awaitable[None]]
    on_change: Callable[[str, JsonObject], Awaitable[None]]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    labels: Mapping[str, str] | None = None
    """Only objects with these labels, chosen by the API server (None: every object)."""
    watch_timeout_seconds: int = 300
    first_pause_seconds: float = 0.5
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    last_error: str | None = None
    """Why the last request failed (None once one succeeds): what a reader that waits is told."""

    @property
    def where(self) -> str:
        """The kind and namespace, for log lines."""
        return f"{self.kind} in {self.namespace or 'all namespaces'}"

    async def run(self) -> None:
        """List and watch until cancelled."""
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    items, version = await self.client.list_at(self.kind, self.namespace, labels=self.labels)
                    await self.on_replace(items)
                    self.synced.set()
                    self.last_error = None
                async for type_, obj in self.client.watch(
                    self.kind,
                    self.namespace,
                    version,
                    timeout_seconds=self.watch_timeout_seconds,
                    labels=self.labels,
                ):
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if type_ in ("ADDED", "MODIFIED", "DELETED"):
                        await self._change(type_, obj)
                failures = 0
            except WatchExpiredError:
                log.info("Watch of %s expired; listing again", self.where)
                version = None
            except KubeError as exc:
                self.last_error = str(exc)
                failures += 1
                pause = min(MAX_PAUSE_SECONDS, self.first_pause_seconds * 2 ** min(failures - 1, 6))
                log.warning("Watch of %s failed (%s); again in %.1f s", self.where, exc, pause)
                await self.sleep(pause)

    async def _change(self, type_: str, obj: JsonObject) -> None:
        try:
            await self.on_change(type_, obj)
        except Exception:  # one object the view could not take must not stop the watch
            metadata = obj.get("metadata") or {}
            log.exception(
                "Could not take a %s change of %s %s/%s",
                type_,
                self.kind,
                metadata.get("namespace"),
                metadata.get("name"),
            )
