"""The SDKs' aiohttp transport reports every aiohttp connection error as an httpx connect timeout (ADR
18); the error mapping reads the cause, so a refused or reset connection stays a Connection error and a
timeout stays a Timeout."""

from __future__ import annotations

import aiohttp
import httpx2
import openai
import pytest

from jesus_adapters.errors import ErrorKind
from jesus_adapters.openai_chat import OPENAI_EXCEPTIONS
from jesus_adapters.profiles import ErrorWording
from jesus_adapters.sdk_errors import map_sdk_error

REQUEST = httpx2.Request("POST", "http://upstream/v1/chat/completions")


def as_the_sdk_raises_it(cause: BaseException) -> BaseException:
    """`cause` as the transport maps it (an httpx2 ConnectTimeout), and the SDK wraps that."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise httpx2.ConnectTimeout(str(exc)) from exc
    except httpx2.ConnectTimeout as transport_error:
        try:
            raise openai.APITimeoutError(request=REQUEST) from transport_error
        except openai.APITimeoutError as sdk_error:
            return sdk_error


def kind_of(exc: BaseException) -> ErrorKind:
    return map_sdk_error(exc, provider="p", sdk=OPENAI_EXCEPTIONS, wording=ErrorWording()).kind


@pytest.mark.parametrize(
    "cause",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientConnectionError("refused"),
    ],
    ids=["server-disconnected", "reset", "refused"],
)
def test_a_broken_connection_behind_a_connect_timeout_is_a_connection_error(cause: BaseException) -> None:
    assert kind_of(as_the_sdk_raises_it(cause)) is ErrorKind.CONNECTION


@pytest.mark.parametrize(
    "cause",
    [aiohttp.ServerTimeoutError("read"), aiohttp.ConnectionTimeoutError("connect"), TimeoutError()],
    ids=["read-timeout", "connect-timeout", "plain"],
)
def test_a_timeout_stays_a_timeout(cause: BaseException) -> None:
    assert kind_of(as_the_sdk_raises_it(cause)) is ErrorKind.TIMEOUT


def test_a_cause_chain_that_loops_ends() -> None:
    first = RuntimeError("a")
    second = RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert kind_of(first) is ErrorKind.MALFORMED_RESPONSE
