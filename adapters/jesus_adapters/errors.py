"""One error taxonomy that every adapter maps its provider's failures into."""

from __future__ import annotations

import enum

from jesus_adapters.types import Usage


class ErrorKind(enum.StrEnum):
    """Why a model call failed, independent of the provider.

    The values are the names RoutePolicy specs use in `failoverOn`.
    """

    RATE_LIMITED = "RateLimited"
    OVERLOADED = "Overloaded"  # 5xx and the providers' "overloaded" answers
    TIMEOUT = "Timeout"
    CONNECTION = "Connection"
    INVALID_REQUEST = "InvalidRequest"
    AUTHENTICATION = "Authentication"
    CONTENT_FILTERED = "ContentFiltered"
    CONTEXT_TOO_LONG = "ContextTooLong"
    MALFORMED_RESPONSE = "MalformedResponse"

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again (here or to another adapter)."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.MALFORMED_RESPONSE,
    }
)


class AdapterError(Exception):
    """A failed model call, classified.

    `status_code` is the provider's HTTP status where there was one; `retry_after_seconds`
    carries the provider's Retry-After hint for rate limits. `usage` is set when the provider
    reported tokens for an answer that still failed (a refusal, a filtered answer): they were spent
    and the router meters them.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(f"{provider}: {kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds
        self.usage = usage

    @property
    def retryable(self) -> bool:
        """Whether this failure may pass on a retry or on another adapter."""
        return self.kind.retryable


class AdapterConfigError(ValueError):
    """An adapter cannot be built from its configuration (unknown provider, missing key or URL).

    Raised by `jesus_adapters.registry.build_adapter` before any call is made; the message names
    the provider, the model and the field at fault.
    """
