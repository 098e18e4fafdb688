"""TokenReviews against the cluster's API server, for the admin API (`admin_auth`).

The client connects on first use, so a router serving spec files may still check the operator's
service account when it is given a kubeconfig. The Kubernetes client is imported only then.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from jesus.router.admin_auth import ReviewUnavailableError, TokenReviewResult

if TYPE_CHECKING:
    from jesus.kube import KubeClient


def review_result(status: dict[str, Any]) -> TokenReviewResult:
    """A TokenReview's status as the admin API decides on it."""
    user = status.get("user") or {}
    return TokenReviewResult(
        authenticated=bool(status.get("authenticated")),
        username=str(user.get("username") or ""),
        audiences=tuple(str(a) for a in status.get("audiences") or ()),
        error=str(status.get("error") or ""),
    )


class ClusterTokenReviewer:
    """Reviews tokens with the API server of `kubeconfig` (default: $KUBECONFIG, else in-cluster)."""

    def __init__(self, kubeconfig: str | None = None, client: KubeClient | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._client = client
        self._connecting = asyncio.Lock()

    async def _connected(self) -> KubeClient:
        async with self._connecting:
            if self._client is None:
                from jesus.kube import KubeClient

                try:
                    self._client = await KubeClient.connect(self._kubeconfig)
                except Exception as exc:  # no kubeconfig, no service account: say which
                    raise ReviewUnavailableError(
                        f"the API server is unreachable: {type(exc).__name__}: {str(exc)[:200]}"
                    ) from exc
            return self._client

    async def review(self, token: str, audiences: list[str]) -> TokenReviewResult:
        from jesus.kube import KubeError

        client = await self._connected()
        try:
            status = await client.review_token(token, audiences)
        except KubeError as exc:
            if exc.status == 0:  # no answer at all: a reset connection, a proxy in between
                raise ReviewUnavailableError(f"the API server is unreachable: {exc.message[:200]}") from exc
            hint = " (the router's ServiceAccount needs create on tokenreviews)" if exc.status == 403 else ""
            raise ReviewUnavailableError(
                f"the API server refused the TokenReview: {exc.status} {exc.reason}{hint}"
            ) from exc
        except Exception as exc:  # fail closed on anything else: a refused connection, a TLS error
            raise ReviewUnavailableError(
                f"the API server is unreachable: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        return review_result(status)
