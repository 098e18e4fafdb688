"""The router's HTTP endpoints against what a hostile or careless client sends past the schema: lone
surrogates, repeated keys, compressed bodies, wrong methods, and a client that goes away mid-stream.
Each is refused with a 4xx in the OpenAI error shape before any adapter is called, or cleaned up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from starlette.requests import ClientDisconnect
from tests.builders.chat import reply
from tests.builders.doubles import FakeAdapter

from jesus.logic.allowance import Allowance
from jesus.router.bodies import InputLimits, parse_json
from jesus.router.redacting import CREDENTIAL_MARKER, RedactingAdapter, scrub_credentials
from jesus.router.service import RouterService, build_app
from jesus_adapters.errors import AdapterError, ErrorKind

from .test_router_boundary import admin_headers, assert_refused
from .test_router_boundary import make_service as make_scripted_service
from .test_router_service import ROUTER, grant, make_service

ONE_MESSAGE = '"messages":[{"role":"user","content":"hi"}]'


@pytest.fixture
async def served() -> AsyncIterator[tuple[RouterService, httpx2.AsyncClient, str]]:
    service = make_service([reply("a long enough answer of several words")])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        yield service, client, grant(service, Allowance(max_tokens=100_000))


def adapter_calls(service: RouterService) -> int:
    adapter = service.router.adapters["primary"].adapter
    assert isinstance(adapter, FakeAdapter)
    return len(adapter.received)


async def post_raw(client: httpx2.AsyncClient, token: str, body: str, **headers: str) -> httpx2.Response:
    return await client.post(
        "/v1/chat/completions",
        content=body.encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json", **headers},
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"messages":[{"role":"user","content":"a\\ud800b"}]}',
        '{"messages":[{"role":"user","content":"\\uDFFF"}],"stream":true}',
        '{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":'
        '{"name":"t","parameters":{"type":"object","properties":{"\\udc00":{}}}}}]}',
        '{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f",'
        '"arguments":"{\\"a\\":\\"\\\\ud800\\"}"}}]},{"role":"tool","tool_call_id":"1","content":"x"}]}',
    ],
    ids=["content", "stream", "schema-key", "arguments-string"],
)
async def test_a_lone_surrogate_is_refused_before_any_adapter_sees_it(
    served: tuple[RouterService, httpx2.AsyncClient, str], body: str
) -> None:
    # json.loads accepts it, but no SDK can encode it (UTF-8 has no surrogates): with a real adapter the
    # call failed as the adapter's fault (502) and counted against its circuit breaker, so one run could
    # open the breaker for every run.
    service, client, token = served
    assert_refused(await post_raw(client, token, body), 400, "surrogate")
    assert adapter_calls(service) == 0


async def test_a_surrogate_pair_is_text_and_served(
    served: tuple[RouterService, httpx2.AsyncClient, str],
) -> None:
    _, client, token = served
    answer = await post_raw(client, token, '{"messages":[{"role":"user","content":"\\ud83d\\ude00"}]}')
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"max_tokens":9}',
        ),
        ("/v1/chat/completions", '{"messages":[{"role":"user","content":"hi","role":"system"}]}'),
        ("/admin/v1/runs", '{"run":"r1","routePolicy":"route","maxTokens":10,"maxTokens":null}'),
    ],
)
async def test_a_repeated_key_is_refused(path: str, body: str) -> None:
    # Parsers disagree on which of two values wins; a check that read the first is bypassed by the last.
    service = make_scripted_service()
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        token = (
            await client.post(
                "/admin/v1/runs", json={"run": "r1", "routePolicy": "route"}, headers=admin_headers()
            )
        ).json()["token"]
        auth = admin_headers() if path.startswith("/admin") else {"authorization": f"Bearer {token}"}
        answer = await client.post(path, content=body.encode(), headers=auth)
    assert_refused(answer, 400, "repeats a key")


def test_repeated_keys_are_refused_at_any_depth_but_equal_keys_in_sibling_objects_are_not() -> None:
    limits = InputLimits()
    assert parse_json(b'[{"a":1},{"a":2}]', limits) == [{"a": 1}, {"a": 2}]
    with pytest.raises(Exception, match="repeats a key"):
        parse_json(b'{"x":[{"a":{"b":1,"b":2}}]}', limits)


async def test_a_compressed_body_is_refused_as_unsupported(
    served: tuple[RouterService, httpx2.AsyncClient, str],
) -> None:
    service, client, token = served
    answer = await post_raw(client, token, "{" + ONE_MESSAGE + "}", **{"content-encoding": "gzip"})
    assert_refused(answer, 415, "Content-Encoding")
    identity = await post_raw(client, token, "{" + ONE_MESSAGE + "}", **{"content-encoding": "identity"})
    assert identity.status_code == 200, identity.text
    assert adapter_calls(service) == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/chat/completions", 405),
        ("PUT", "/admin/v1/runs", 405),
        ("POST", "/v1/models", 405),
        ("GET", "/v1/nothing-here", 404),
    ],
)
async def test_wrong_methods_and_paths_answer_in_the_error_shape(
    served: tuple[RouterService, httpx2.AsyncClient, str], method: str, path: str, status: int
) -> None:
    _, client, _ = served
    answer = await client.request(method, path)
    assert_refused(answer, status)


def _scope(token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")],
        "client": ("10.0.0.1", 1234),
        "server": ("router", 80),
    }


async def test_a_client_gone_mid_stream_releases_the_calls_reservation_at_once() -> None:
    # The server's send raises once the client has gone; the response's generator was left suspended
    # and held the reservation (and the provider's stream) until garbage collection got to it.
    service = make_service([reply(" ".join(["word"] * 40), input_tokens=7, output_tokens=3)])
    token = grant(service, Allowance(max_tokens=10_000))
    route = service.registry.resolve(token)
    assert route is not None
    body = json.dumps({"stream": True, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    frames: list[object] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body.encode(), "more_body": False}
        await asyncio.Event().wait()  # the client never says anything more
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        frames.append(message)
        if message["type"] == "http.response.body" and len(frames) >= 3:
            raise OSError("the client went away")

    with pytest.raises(ClientDisconnect):  # starlette's word for a send that failed
        await build_app(service)(_scope(token), receive, send)
    assert route.ledger.reserved.tokens == 0
    assert route.ledger.reserved.cost_micros == 0


ODD_KEY = "local/credential+0123="  # no known format, and characters that change when encoded


@pytest.mark.parametrize(
    "echo",
    [
        ODD_KEY,
        "local%2Fcredential%2B0123%3D",  # percent-encoded, as in a query string the provider echoes
        "local%2fcredential%2b0123%3d",  # lower-case hex digits
        "local/credential 0123=",  # form-encoded: + became a space
        "local\\/credential+0123=",  # JSON with escaped slashes
    ],
)
def test_a_credential_echoed_in_an_encoded_form_is_scrubbed(echo: str) -> None:
    assert (
        scrub_credentials(f"bad key ?key={echo}&x=1", (ODD_KEY,)) == f"bad key ?key={CREDENTIAL_MARKER}&x=1"
    )


def test_control_characters_in_a_provider_error_reach_no_caller() -> None:
    # A provider (or whoever sits in front of it) controls its error text: an ANSI escape in it would
    # repaint the terminal of whoever reads the run's record, a newline forge a line in a text log.
    adapter = RedactingAdapter(FakeAdapter([reply()]), lambda text: text)
    error = AdapterError(ErrorKind.OVERLOADED, "upstream\x1b[2J\x1b[31m broke\r\nFAKE LINE\x00", provider="p")
    assert adapter.clean_error(error).message == "upstream\\x1b[2J\\x1b[31m broke\\r\\nFAKE LINE\\x00"


@pytest.mark.parametrize(
    "step",
    [
        reply("half an emoji \ud83d"),
        AdapterError(ErrorKind.INVALID_REQUEST, "bad byte \udcff in the prompt", provider="fake"),
    ],
    ids=["answer", "error"],
)
async def test_a_lone_surrogate_from_a_provider_is_escaped_not_a_500(step: Any) -> None:
    # An SDK decodes `"\ud83d"` (half an emoji a provider split) as a lone surrogate; the response could
    # not be encoded as UTF-8 and the client got a 500 with a traceback in the log.
    service = make_service([step], [step])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        answer = await post_raw(client, grant(service), "{" + ONE_MESSAGE + "}")
    assert answer.status_code < 500
    assert "\\ud83d" in answer.text or "\\udcff" in answer.text
    json.loads(answer.text)
