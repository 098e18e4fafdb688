"""Classify a provider's failed answer (status, error body, headers) into the one error taxonomy.

Both wire protocols (Anthropic Messages and OpenAI Chat Completions, with the vLLM and llama.cpp
variants) report failures as an HTTP status plus a JSON body naming an error type, a code and a
message. The tables below are the whole mapping; the profile's `ErrorWording` refines plain 400s.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.profiles import ErrorWording

# HTTP status -> kind. Any other 4xx is an invalid request, any other 5xx an overload.
STATUS_KINDS: Mapping[int, ErrorKind] = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    402: ErrorKind.AUTHENTICATION,  # billing: the account may not call this endpoint
    403: ErrorKind.AUTHENTICATION,
    404: ErrorKind.INVALID_REQUEST,  # usually an unknown model name
    408: ErrorKind.TIMEOUT,
    409: ErrorKind.OVERLOADED,  # the SDKs retry conflicts; so do we
    413: ErrorKind.INVALID_REQUEST,
    422: ErrorKind.INVALID_REQUEST,
    429: ErrorKind.RATE_LIMITED,
    499: ErrorKind.CONNECTION,
    529: ErrorKind.OVERLOADED,  # Anthropic's "overloaded_error"
}

# Error `type` strings from the providers' bodies -> kind. Used when there is no HTTP status to go
# by: an error event in the middle of a 200 stream.
ERROR_TYPE_KINDS: Mapping[str, ErrorKind] = {
    # Anthropic
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.AUTHENTICATION,
    "billing_error": ErrorKind.AUTHENTICATION,
    "not_found_error": ErrorKind.INVALID_REQUEST,
    "request_too_large": ErrorKind.INVALID_REQUEST,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "timeout_error": ErrorKind.TIMEOUT,
    "api_error": ErrorKind.OVERLOADED,
    "overloaded_error": ErrorKind.OVERLOADED,
    # OpenAI and llama.cpp
    "server_error": ErrorKind.OVERLOADED,
    "unavailable_error": ErrorKind.OVERLOADED,
    "exceed_context_size_error": ErrorKind.CONTEXT_TOO_LONG,
    "not_supported_error": ErrorKind.INVALID_REQUEST,
    # vLLM names its error types after HTTP exceptions
    "badrequesterror": ErrorKind.INVALID_REQUEST,
    "notfounderror": ErrorKind.INVALID_REQUEST,
    "internalservererror": ErrorKind.OVERLOADED,
    "serviceunavailableerror": ErrorKind.OVERLOADED,
}


# Providers report an account out of credit as a 429 (OpenAI) or a 400 (Anthropic); neither a retry
# nor a different request helps, so both become Authentication (the account may not call).
_QUOTA_REFINABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.INVALID_REQUEST})


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """The parts of a provider's error body that classification reads."""

    message: str = ""
    type: str = ""
    code: str = ""
    status: int | None = None  # a status the body itself names (vLLM, llama.cpp put it in `code`)

    @classmethod
    def from_body(cls, body: object, fallback_message: str = "") -> ErrorDetail:
        """Read `{"error": {...}}`, a bare `{...}` error object or a plain string body."""
        if isinstance(body, Mapping):
            inner = body.get("error", body)
            error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {"message": inner}
            code = error.get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else None
            return cls(
                message=_text(error.get("message")) or fallback_message,
                type=_text(error.get("type")),
                code=_text(code),
                status=status,
            )
        if isinstance(body, str) and body:
            return cls(message=body[:500])
        return cls(message=fallback_message)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def classify_failure(
    *,
    provider: str,
    status: int | None,
    detail: ErrorDetail,
    wording: ErrorWording,
    headers: Mapping[str, str] | None = None,
) -> AdapterError:
    """Turn one failed answer into an `AdapterError` of the right kind.

    `status` is the HTTP status of the answer, or `None` for an error inside a stream (then the
    body's own status or error type decides).
    """
    effective_status = status if status is not None and status >= 400 else detail.status
    kind = _kind_from_status(effective_status) or _kind_from_type(detail.type) or ErrorKind.OVERLOADED
    haystack = " ".join((detail.message, detail.type, detail.code)).lower()
    if kind is ErrorKind.INVALID_REQUEST and _mentions(haystack, wording.context_too_long):
        kind = ErrorKind.CONTEXT_TOO_LONG
    elif kind is ErrorKind.INVALID_REQUEST and _mentions(haystack, wording.content_filtered):
        kind = ErrorKind.CONTENT_FILTERED
    elif kind in _QUOTA_REFINABLE and _mentions(haystack, wording.quota_exhausted):
        kind = ErrorKind.AUTHENTICATION
    message = detail.message or detail.type or f"HTTP {effective_status}"
    return AdapterError(
        kind,
        message,
        provider=provider,
        status_code=effective_status,
        retry_after_seconds=parse_retry_after(headers or {}),
    )


def _kind_from_status(status: int | None) -> ErrorKind | None:
    if status is None or status < 400:
        return None
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    return ErrorKind.OVERLOADED if status >= 500 else ErrorKind.INVALID_REQUEST


def _kind_from_type(error_type: str) -> ErrorKind | None:
    return ERROR_TYPE_KINDS.get(error_type.lower()) if error_type else None


def _mentions(haystack: str, markers: tuple[str, ...]) -> bool:
    return any(marker in haystack for marker in markers)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if given.

    Header names are matched case-insensitively; a negative or unreadable value is ignored.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = _non_negative_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_float(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _non_negative_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # A float() of "nan" or "inf" parses; neither is a wait.
    return number if 0 <= number < float("inf") else None
