"""The OPA server client against scripted HTTP answers: every failure denies and says why."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from tests.builders.policy import build_input

from jesus.policy import OpaServerEngine

BASE = "http://opa.test:8181"
Handler = Callable[[httpx.Request], httpx.Response]


def engine_answering(handler: Handler, *, timeout_seconds: float = 2.0) -> OpaServerEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpaServerEngine(BASE, timeout_seconds=timeout_seconds, client=client)


async def test_posts_the_input_to_the_decision_with_strict_builtin_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": {"allow": True, "reasons": [], "warnings": ["w"]}})

    document = build_input()
    decision = await engine_answering(handler).decide(document)
    assert decision.allow
    assert decision.warnings == ("w",)
    assert decision.engine == "opa-server"
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/v1/data/jesus/admission/decision"
    assert request.url.params["strict-builtin-errors"] == "true"
    assert json.loads(request.content) == {"input": document}


async def test_denial_is_passed_through() -> None:
    answer = {"result": {"allow": False, "reasons": ["no"], "warnings": []}}
    decision = await engine_answering(lambda _: httpx.Response(200, json=answer)).decide(build_input())
    assert (decision.allow, decision.reasons, decision.decided) == (False, ("no",), True)


async def test_undefined_decision_fails_closed() -> None:
    decision = await engine_answering(lambda _: httpx.Response(200, json={})).decide(build_input())
    assert not decision.allow
    assert decision.error == (
        f"data.jesus.admission.decision is undefined on the OPA server at {BASE} (is the policy loaded?)"
    )


async def test_server_error_fails_closed_with_opa_message() -> None:
    body = {
        "code": "internal_error",
        "message": "1 error occurred: policy.rego:3: eval_builtin_error: div: divide by zero",
        "errors": [{"message": "div: divide by zero", "location": {"file": "policy.rego", "row": 3}}],
    }
    decision = await engine_answering(lambda _: httpx.Response(500, json=body)).decide(build_input())
    assert not decision.allow
    assert decision.error is not None
    assert decision.error.startswith(
        f"the OPA server at {BASE} answered 500: internal_error: 1 error occurred"
    )
    assert "policy.rego:3 div: divide by zero" in decision.error


async def test_non_json_answer_fails_closed() -> None:
    decision = await engine_answering(lambda _: httpx.Response(200, text="<html>proxy</html>")).decide(
        build_input()
    )
    assert not decision.allow
    assert decision.error == f"the OPA server at {BASE} did not answer with a JSON object"


async def test_malformed_result_fails_closed() -> None:
    answer = {"result": {"allow": "true", "reasons": [], "warnings": []}}
    decision = await engine_answering(lambda _: httpx.Response(200, json=answer)).decide(build_input())
    assert not decision.allow
    assert decision.error is not None
    assert "not a boolean" in decision.error


async def test_timeout_fails_closed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    decision = await engine_answering(handler, timeout_seconds=0.25).decide(build_input())
    assert not decision.allow
    assert decision.error == f"the OPA server at {BASE} did not answer within 0.25 s"


async def test_unreachable_server_fails_closed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    decision = await engine_answering(handler).decide(build_input())
    assert not decision.allow
    assert decision.error == f"the OPA server at {BASE} is unreachable: connection refused"


async def test_nothing_listening_fails_closed_for_real() -> None:
    # Port 9 (discard) on loopback: nothing listens there on a test machine.
    async with OpaServerEngine("http://127.0.0.1:9", timeout_seconds=1.0) as engine:
        decision = await engine.decide(build_input())
    assert not decision.allow
    assert decision.error is not None
    assert decision.error.startswith("the OPA server at http://127.0.0.1:9 is unreachable")


@pytest.mark.parametrize("status", [400, 404, 503])
async def test_any_http_error_fails_closed(status: int) -> None:
    decision = await engine_answering(lambda _: httpx.Response(status, text="nope")).decide(build_input())
    assert not decision.allow
    assert decision.error == f"the OPA server at {BASE} answered {status}: nope"
