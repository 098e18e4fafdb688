"""The runner key of each namespace: one Secret per namespace, made once, read back rarely.

Runner Jobs carry their router token sealed with it (`jesus.logic.sealing`), so an attempt costs no
Secret of its own. The key is kept in memory and read again after `reread_seconds`, so a key someone
replaced (by deleting the Secret: the operator makes a new one) reaches new Jobs within that time; a Job
made with the old key fails its attempt with an error that says so, and the run's retry policy applies.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from jesus.api.common import LABEL_MANAGED_BY
from jesus.kube import KubeClient
from jesus.logic import sealing
from jesus.logic.manifests import COMPONENT_RUNNER, LABEL_COMPONENT, MANAGED_BY
from jesus.logic.sealing import RUNNER_KEY_SECRET, SealError

REREAD_SECONDS = 60.0


class RunnerKeyError(Exception):
    """The namespace's runner-key Secret exists but is not a usable Jesus runner key."""


@dataclass
class _Known:
    key: str
    read_at: float


class RunnerKeys:
    """The runner key of each namespace, made when missing."""

    def __init__(
        self, kube: KubeClient, clock: Callable[[], float], reread_seconds: float = REREAD_SECONDS
    ) -> None:
        self._kube = kube
        self._clock = clock
        self._reread = reread_seconds
        self._known: dict[str, _Known] = {}
        self._reading: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def key(self, namespace: str) -> str:
        """The runner key of `namespace`; RunnerKeyError naming the Secret when its key is unusable."""
        known = self._fresh(namespace)
        if known is not None:
            return known
        # Runs of one namespace arrive together: one of them reads (or makes) the key, the others wait.
        async with self._reading[namespace]:
            return self._fresh(namespace) or await self._read(namespace)

    def _fresh(self, namespace: str) -> str | None:
        known = self._known.get(namespace)
        return known.key if known is not None and self._clock() - known.read_at < self._reread else None

    async def _read(self, namespace: str) -> str:
        now = self._clock()
        secret = await self._kube.get("Secret", namespace, RUNNER_KEY_SECRET)
        if secret is None:
            labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: COMPONENT_RUNNER}
            secret, _ = await self._kube.create_or_get(
                sealing.build_runner_key_secret(namespace, sealing.new_key(), labels)
            )
        try:
            key = sealing.secret_key(secret)
        except SealError as exc:
            self._known.pop(namespace, None)
            raise RunnerKeyError(f"{exc}; delete it and the operator makes a new one") from exc
        self._known[namespace] = _Known(key, now)
        return key
