"""The OPA server engine: asks a running `opa run --server` (the chart's sidecar) over its Data API.

Fails closed: an unreachable server, a timeout, an HTTP error (a broken policy or a failing built-in),
an undefined decision or a malformed answer each give a denying Decision whose reason says which.
"""

from __future__ import annotations

from typing import Any

import httpx

from jesus.logic.policy_input import PolicyInput
from jesus.policy.decision import DECISION_PATH, DECISION_REF, Decision, decision_from_result, fail_closed

ENGINE_NAME = "opa-server"
DEFAULT_TIMEOUT_SECONDS = 2.0


class OpaServerEngine:
    """Evaluates the admission policy on an OPA server through its REST Data API."""

    name = ENGINE_NAME

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """`base_url` is the server's address, e.g. http://127.0.0.1:8181. Pass `client` to share a
        connection pool (the engine then leaves closing it to the caller)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        # strict-builtin-errors: a failing built-in is an error, not an undefined (silently absent) deny.
        self._url = f"{self.base_url}/v1/data/{DECISION_PATH}?strict-builtin-errors=true"

    async def decide(self, policy_input: PolicyInput) -> Decision:
        """The server's decision for `policy_input`, or a denial that says why there is none."""
        try:
            response = await self._client.post(
                self._url, json={"input": policy_input}, timeout=self.timeout_seconds
            )
        except httpx.TimeoutException:
            return fail_closed(
                self.name,
                f"the OPA server at {self.base_url} did not answer within {self.timeout_seconds:g} s",
            )
        except httpx.TransportError as exc:
            return fail_closed(self.name, f"the OPA server at {self.base_url} is unreachable: {_cause(exc)}")
        except (TypeError, ValueError) as exc:
            return fail_closed(self.name, f"the input document is not JSON: {exc}")
        return _decision_from_response(response, self.base_url)

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client the engine asks the server with (others may share its pool)."""
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this engine created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> OpaServerEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _decision_from_response(response: httpx.Response, base_url: str) -> Decision:
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != httpx.codes.OK:
        detail = _server_error(body) or response.text.strip()[:300] or response.reason_phrase
        return fail_closed(
            ENGINE_NAME, f"the OPA server at {base_url} answered {response.status_code}: {detail}"
        )
    if not isinstance(body, dict):
        return fail_closed(ENGINE_NAME, f"the OPA server at {base_url} did not answer with a JSON object")
    if "result" not in body:
        return fail_closed(
            ENGINE_NAME,
            f"{DECISION_REF} is undefined on the OPA server at {base_url} (is the policy loaded?)",
        )
    return decision_from_result(body["result"], ENGINE_NAME)


def _server_error(body: Any) -> str | None:
    """OPA's error body: {"code": ..., "message": ..., "errors": [{"message": ..., "location": ...}]}."""
    if not isinstance(body, dict):
        return None
    parts = [f"{body.get('code', 'error')}: {body.get('message', '')}".strip()]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            location = error.get("location") or {}
            where = f"{location.get('file', '')}:{location.get('row', '')}" if location else ""
            parts.append(f"{where} {error.get('message', '')}".strip())
    return "; ".join(part for part in parts if part)[:500]
