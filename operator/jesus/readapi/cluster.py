"""The read API's cluster (TokenReviews, SubjectAccessReviews, Budgets) and `jesus mcp`'s (who am I,
create a run), through one `KubeClient` that connects on first use (a kubeconfig, else in-cluster)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jesus.api.objects import JsonObject

if TYPE_CHECKING:
    from jesus.kube import KubeClient


class LazyCluster:
    """`ClusterReviews` and a Budget source over the API server of `kubeconfig`."""

    def __init__(self, kubeconfig: str | None = None, client: KubeClient | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._client = client
        self._connecting = asyncio.Lock()

    async def client(self) -> KubeClient:
        """The connected client (connecting the first time)."""
        async with self._connecting:
            if self._client is None:
                from jesus.kube import KubeClient

                self._client = await KubeClient.connect(self._kubeconfig)
            return self._client

    async def review_token(self, token: str, audiences: list[str]) -> JsonObject:
        return await (await self.client()).review_token(token, audiences)

    async def review_access(self, user: JsonObject, attributes: JsonObject) -> JsonObject:
        return await (await self.client()).review_access(user, attributes)

    async def who_am_i(self) -> JsonObject:
        """Who the credentials are (a SelfSubjectReview's userInfo)."""
        return await (await self.client()).who_am_i()

    async def create(self, obj: JsonObject) -> JsonObject:
        """Create `obj` with these credentials."""
        return await (await self.client()).create(obj)

    async def budgets(self) -> list[JsonObject]:
        """Every Budget in the cluster (the read API's own ServiceAccount lists them)."""
        return await (await self.client()).list("Budget")
