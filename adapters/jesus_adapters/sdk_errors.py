"""Map an official SDK's exceptions into `AdapterError`.

The `anthropic` and `openai` SDKs share one exception design (both are generated from the same
template, over httpx2): a timeout error that subclasses a connection error, a status error with the
decoded body, a validation error for answers that do not fit the schema, and a bare API error for
errors reported inside a stream. `SdkExceptions` names one SDK's classes; `map_sdk_error` is the
single mapping both adapters use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import aiohttp
import httpx2
import pydantic

from jesus_adapters.classify import ErrorDetail, classify_failure
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.profiles import ErrorWording

# What reading an answer the SDK built without validation raises when the answer has the wrong
# shape: a missing field (AttributeError), a wrong type (TypeError), a bad number (ValueError).
SHAPE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError)


@dataclass(frozen=True, slots=True)
class SdkExceptions:
    """The exception classes of one SDK, from most to least specific."""

    timeout: type[Exception]
    status: type[Exception]
    response_validation: type[Exception]
    connection: type[Exception]
    api: type[Exception]
    base: type[Exception]

    @classmethod
    def of(cls, sdk: ModuleType, *, base: type[Exception]) -> SdkExceptions:
        """The classes of an SDK built from the shared template, which names them alike."""
        return cls(
            timeout=_exception(sdk, "APITimeoutError"),
            status=_exception(sdk, "APIStatusError"),
            response_validation=_exception(sdk, "APIResponseValidationError"),
            connection=_exception(sdk, "APIConnectionError"),
            api=_exception(sdk, "APIError"),
            base=base,
        )


def _exception(sdk: ModuleType, name: str) -> type[Exception]:
    found = getattr(sdk, name)
    if not (isinstance(found, type) and issubclass(found, Exception)):
        raise TypeError(f"{sdk.__name__}.{name} is not an exception class")
    return found


def map_sdk_error(
    exc: BaseException, *, provider: str, sdk: SdkExceptions, wording: ErrorWording
) -> AdapterError:
    """The `AdapterError` for `exc`, raised by an SDK call, a stream, or the call's deadline."""
    if isinstance(exc, AdapterError):
        return exc
    broken = _broken_connection(exc)
    if broken is not None:
        return AdapterError(ErrorKind.CONNECTION, f"connection failed: {broken}", provider=provider)
    if isinstance(exc, TimeoutError | httpx2.TimeoutException | sdk.timeout):
        return AdapterError(ErrorKind.TIMEOUT, "no answer before the deadline", provider=provider)
    if isinstance(exc, sdk.status):
        return classify_failure(
            provider=provider,
            status=_int_attr(exc, "status_code"),
            detail=ErrorDetail.from_body(getattr(exc, "body", None), str(getattr(exc, "message", exc))),
            wording=wording,
            headers=_headers_of(exc),
        )
    if isinstance(exc, sdk.response_validation | json.JSONDecodeError | pydantic.ValidationError):
        return AdapterError(
            ErrorKind.MALFORMED_RESPONSE, f"answer does not fit the protocol: {exc}", provider=provider
        )
    if isinstance(exc, httpx2.DecodingError):
        return AdapterError(ErrorKind.MALFORMED_RESPONSE, f"undecodable answer: {exc}", provider=provider)
    if isinstance(exc, sdk.connection | httpx2.TransportError | ConnectionError):
        cause = exc.__cause__ or exc
        return AdapterError(ErrorKind.CONNECTION, f"connection failed: {cause}", provider=provider)
    if isinstance(exc, sdk.api):
        # An error event inside a stream: no HTTP status, the body says what happened.
        return classify_failure(
            provider=provider,
            status=None,
            detail=ErrorDetail.from_body(getattr(exc, "body", None), str(getattr(exc, "message", exc))),
            wording=wording,
        )
    return AdapterError(
        ErrorKind.MALFORMED_RESPONSE, f"unexpected {type(exc).__name__}: {exc}", provider=provider
    )


def _broken_connection(exc: BaseException) -> BaseException | None:
    """The aiohttp connection failure (refused, reset, closed by the server) behind `exc`, if any.

    The SDKs' aiohttp transport reports every `aiohttp.ClientConnectionError` as an httpx connect
    timeout, so the SDK raises its timeout error for a refused connection too; the cause says which it
    was. aiohttp's own timeouts are `TimeoutError`s as well, and stay timeouts."""
    seen: BaseException | None = exc
    for _ in range(8):  # causes nest a few levels deep; a cycle must not loop for ever
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ClientConnectionError) and not isinstance(seen, TimeoutError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _int_attr(exc: BaseException, name: str) -> int | None:
    value = getattr(exc, name, None)
    return value if isinstance(value, int) else None


def _headers_of(exc: BaseException) -> Mapping[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else {}
