"""One error taxonomy that every adapter maps its provider's failures into."""

from __future__ import annotations

import enum


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
    carries the provider's Retry-After hint for rate limits.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds

    @property
    def retryable(self) -> bool:
        """Whether this failure may pass on a retry or on another adapter."""
        return self.kind.retryable
