"""The operator's side of the router's admin API: register a run, get its token.

Runner pods get only that token; the router maps it to the run's route and allowance and holds the
provider credentials itself. The operator proves who it is with its service-account token, projected
for the router's audience into a file the kubelet renews (`ProjectedToken`); without a cluster, with a
static token both processes were given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx

from jesus.api.agentrun import AgentRun
from jesus.api.registration import MeteredSpend, RunRegistration

ADMIN_TOKEN_VARIABLE = "JESUS_ROUTER_ADMIN_TOKEN"
ADMIN_TOKEN_FILE_VARIABLE = "JESUS_ROUTER_ADMIN_TOKEN_FILE"
# The kubelet rewrites a projected token well before it expires (at 80 % of its life); reading it
# again every minute keeps the operator on a fresh one without a file read per registration.
TOKEN_REREAD_SECONDS = 60.0
MAX_TOKEN_FILE_BYTES = 8192


class RouterRegistrationError(Exception):
    """The router refused or could not be reached; the run waits and is retried."""


class RunRegistrar(Protocol):
    """Registers runs with the router."""

    async def register(self, run: AgentRun) -> str:
        """The run's bearer token for the router."""
        ...

    async def revoke(self, token: str) -> MeteredSpend | None:
        """Refuse `token` from now on; what the router metered for it, or None when it cannot say."""
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


class ProjectedToken:
    """The operator's service-account token for the router, read from `path` (a projected volume)
    and read again every `reread_seconds` of `clock`, so a renewed token is picked up."""

    def __init__(
        self, path: Path, clock: Callable[[], float], reread_seconds: float = TOKEN_REREAD_SECONDS
    ) -> None:
        self.path, self._clock, self._reread = path, clock, reread_seconds
        self._token = ""
        self._read_at: float | None = None

    def __call__(self) -> str:
        """The token; RouterRegistrationError naming the file when it cannot be read or is empty."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._reread or not self._token:
            try:
                with self.path.open("rb") as file:
                    data = file.read(MAX_TOKEN_FILE_BYTES + 1)
            except OSError as exc:
                raise RouterRegistrationError(
                    f"the operator's token for the router cannot be read from {self.path}: {exc.strerror}"
                ) from exc
            token = data.decode("ascii", "replace").strip()
            if not token or len(data) > MAX_TOKEN_FILE_BYTES or any(c.isspace() for c in token):
                raise RouterRegistrationError(
                    f"{self.path} holds no service-account token (empty, longer than "
                    f"{MAX_TOKEN_FILE_BYTES} bytes or several words)"
                )
            self._token, self._read_at = token, now
        return self._token


class RouterAdminClient:
    """POST /admin/v1/runs on the router service, with the operator's credential: a static token, or a
    callable that answers the current one (`ProjectedToken`)."""

    def __init__(
        self,
        base_url: str,
        admin_token: str | Callable[[], str],
        *,
        timeout_seconds: float = 10.0,
        max_in_flight: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network (tests hand in the router's own app)."""
        self._credential: Callable[[], str] = admin_token if callable(admin_token) else (lambda: admin_token)
        self._client = httpx.AsyncClient(
            transport=transport,
            base_url=base_url.rstrip("/"),
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
        headers = {"Authorization": f"Bearer {self._credential()}"}
        try:
            async with self._slots:
                response = await self._client.post("/admin/v1/runs", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RouterRegistrationError(f"the router is unreachable: {exc}") from exc
        if response.status_code != 201:
            raise RouterRegistrationError(
                f"the router refused the run ({response.status_code}): {response.text[:300]}"
            )
        return str(response.json()["token"])

    async def revoke(self, token: str) -> MeteredSpend | None:
        """DELETE /admin/v1/runs: refuse `token` from now on; what the router metered for it (None when
        the router cannot say: it never saw the token, or keeps accounts only in its memory and has
        restarted). RouterRegistrationError when it is unreachable or refuses."""
        headers = {"Authorization": f"Bearer {self._credential()}"}
        try:
            async with self._slots:
                response = await self._client.delete(
                    "/admin/v1/runs", params={"token": token}, headers=headers
                )
        except httpx.HTTPError as exc:
            raise RouterRegistrationError(f"the router is unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RouterRegistrationError(
                f"the router refused to revoke the token ({response.status_code}): {response.text[:300]}"
            )
        try:
            metered = response.json().get("metered")
            return None if metered is None else MeteredSpend.model_validate(metered)
        except (ValueError, AttributeError) as exc:
            raise RouterRegistrationError(
                f"the router answered the revocation with what is not a metered spend: {exc}"
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
