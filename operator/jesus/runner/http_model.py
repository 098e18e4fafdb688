"""The runner's model client in a pod: the router service over HTTP, through the official openai SDK.

The pod holds only its run token; the router holds the provider credentials. The SDK's own retries
are off: the router already retried and failed over, and a second layer would double the spending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai

from jesus.router.tracing import trace_headers
from jesus.router.wire import RECORD_KEY, parse_completion, request_body
from jesus.runner.model import ModelCallError, ModelReply
from jesus_adapters.errors import ErrorKind
from jesus_adapters.types import ChatRequest

# Waits before retrying a call whose connection was refused (a router restarting or rolling out).
CONNECT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


class RouterHttpModelClient:
    """Calls `<router_url>/v1/chat/completions` with the run's token."""

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
        self._client = openai.AsyncOpenAI(
            base_url=router_url.rstrip("/") + "/v1",
            api_key=run_token,
            max_retries=0,
            timeout=timeout_seconds,
            http_client=http_client,
        )

    async def complete(self, request: ChatRequest) -> ModelReply:
        """One call through the router; failures become ModelCallError with the router's record."""
        body = request_body(request)
        delays = iter(self._connect_retry_delays)
        while True:
            try:
                raw = await self._client.chat.completions.with_raw_response.create(
                    **body, extra_headers=trace_headers()
                )
                break
            except openai.APIStatusError as exc:
                raise _call_error(exc) from exc
            except openai.APIConnectionError as exc:
                delay = next(delays, None)
                # Only a refused connection is safe to repeat: the router never saw the call. Any
                # later failure may have been answered and paid for.
                if delay is None or not isinstance(exc.__cause__, httpx2.ConnectError):
                    raise ModelCallError(
                        ErrorKind.CONNECTION, f"the router is unreachable: {exc}", record=None
                    ) from exc
                await self._sleep(delay)
        try:
            payload: dict[str, Any] = raw.http_response.json()
            response = parse_completion(payload)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelCallError(
                ErrorKind.MALFORMED_RESPONSE,
                f"the router's answer is not a chat completion: {exc}",
                record=None,
            ) from exc
        return ModelReply(response, dict(payload.get(RECORD_KEY) or {}))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def _call_error(exc: openai.APIStatusError) -> ModelCallError:
    try:
        payload = exc.response.json()
    except ValueError:
        payload = {}
    error = payload.get("error") if isinstance(payload, dict) else None
    kind = (
        str(error.get("code")) if isinstance(error, dict) and error.get("code") else f"HTTP{exc.status_code}"
    )
    message = str(error.get("message")) if isinstance(error, dict) else exc.message
    record = payload.get(RECORD_KEY) if isinstance(payload, dict) else None
    return ModelCallError(kind, message, record=record)
