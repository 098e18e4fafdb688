"""The runner's model client in a pod: the router service over HTTP, through the official openai SDK.

The pod holds only its run token; the router holds the provider credentials. The SDK's own retries
are off: the router already retried and failed over, and a second layer would double the spending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from jesus.router.tracing import trace_headers
from jesus.router.wire import RECORD_KEY, parse_completion, request_body
from jesus.runner.model import ModelCallError, ModelReply
from jesus_adapters.errors import ErrorKind
from jesus_adapters.types import ChatRequest

# Waits before retrying a call whose connection was refused (a router restarting or rolling out).
CONNECT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


class RouterHttpModelClient:
    """Calls `<router_url>/v1/chat/completions` with the run's token.

    Plain HTTP, not the OpenAI SDK: the router is ours and answers one known shape (jesus.router.wire),
    and a runner pod that never imports the SDK starts about a third faster.
    """

    def __init__(
        self,
        router_url: str,
        run_token: str,
        *,
        timeout_seconds: float = 600.0,
        http_client: httpx2.AsyncClient | None = None,
        connect_retry_delays: tuple[float, ...] = CONNECT_RETRY_DELAYS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._connect_retry_delays = connect_retry_delays
        self._sleep = sleep
        self._url = router_url.rstrip("/") + "/v1/chat/completions"
        self._headers = {"Authorization": f"Bearer {run_token}"}
        self._timeout = timeout_seconds
        self._client = http_client or httpx2.AsyncClient(timeout=timeout_seconds)
        self._owns_client = http_client is None

    async def complete(self, request: ChatRequest) -> ModelReply:
        """One call through the router; failures become ModelCallError with the router's record."""
        body = request_body(request)
        delays = iter(self._connect_retry_delays)
        while True:
            try:
                response = await self._client.post(
                    self._url,
                    json=body,
                    headers={**self._headers, **trace_headers()},
                    timeout=self._timeout,
                )
                break
            except httpx2.TransportError as exc:
                delay = next(delays, None)
                # Only a refused connection is safe to repeat: the router never saw the call. Any
                # later failure may have been answered and paid for.
                if delay is None or not isinstance(exc, httpx2.ConnectError):
                    raise ModelCallError(
                        ErrorKind.CONNECTION, f"the router is unreachable: {_cause(exc)}", record=None
                    ) from exc
                await self._sleep(delay)
        if not response.is_success:
            raise _call_error(response)
        try:
            payload: dict[str, Any] = response.json()
            completion = parse_completion(payload)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ModelCallError(
                ErrorKind.MALFORMED_RESPONSE,
                f"the router's answer is not a chat completion: {exc}",
                record=None,
            ) from exc
        return ModelReply(completion, dict(payload.get(RECORD_KEY) or {}))

    async def aclose(self) -> None:
        """Close the HTTP client if this one created it."""
        if self._owns_client:
            await self._client.aclose()


def _cause(exc: httpx2.TransportError) -> str:
    return str(exc).strip() or type(exc).__name__


def _call_error(response: httpx2.Response) -> ModelCallError:
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    kind = str(code) if code else f"HTTP{response.status_code}"
    if isinstance(error, dict) and error.get("message") is not None:
        message = str(error["message"])
    else:
        message = f"the router answered {response.status_code}: {response.text[:300]}"
    record = payload.get(RECORD_KEY) if isinstance(payload, dict) else None
    return ModelCallError(kind, message, record=record if isinstance(record, dict) else None)
