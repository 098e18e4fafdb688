"""The operator's side of the router's admin API: register a run, get its token.

Runner pods get only that token; the router maps it to the run's route and allowance and holds the
provider credentials itself.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx

from jesus.api.agentrun import AgentRun
from jesus.api.registration import RunRegistration

ADMIN_TOKEN_VARIABLE = "JESUS_ROUTER_ADMIN_TOKEN"


class RouterRegistrationError(Exception):
    """The router refused or could not be reached; the run waits and is retried."""


class RunRegistrar(Protocol):
    """Registers runs with the router."""

    async def register(self, run: AgentRun) -> str:
        """The run's bearer token for the router."""
        ...


def registration_of(run: AgentRun) -> RunRegistration:
    """What the router is told about an admitted run: its route, classification and allowance."""
    limits = run.spec.limits
    return RunRegistration.create(
        run=run.metadata.name or "",  # a name is never missing on a cluster object; refused if it were
        namespace=run.metadata.namespace,
        route_policy=run.spec.route_policy_ref.name,
        data_classification=run.spec.data_classification,
        max_tokens=limits.max_tokens,
        max_cost_micros=limits.max_cost_micros,
    )


class RouterAdminClient:
    """POST /admin/v1/runs on the router service, with the admin token."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout_seconds: float = 10.0,
        max_in_flight: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network (tests hand in the router's own app)."""
        self._client = httpx.AsyncClient(
            transport=transport,
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout_seconds,
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        )
        # Queue here rather than in httpx's pool: its bookkeeping walks every waiting request and
        # every connection on each request, which cost more CPU than the registrations themselves
        # with hundreds of runs admitted at once (the load benchmark's profile).
        self._slots = asyncio.Semaphore(max_in_flight)

    async def register(self, run: AgentRun) -> str:
        """Register `run` (route, classification, allowance); the token the router issued."""
        body = registration_of(run).to_wire()
        try:
            async with self._slots:
                response = await self._client.post("/admin/v1/runs", json=body)
        except httpx.HTTPError as exc:
            raise RouterRegistrationError(f"the router is unreachable: {exc}") from exc
        if response.status_code != 201:
            raise RouterRegistrationError(
                f"the router refused the run ({response.status_code}): {response.text[:300]}"
            )
        return str(response.json()["token"])

    async def aclose(self) -> None:
        await self._client.aclose()
