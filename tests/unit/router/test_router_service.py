"""The router service over HTTP: tokens, chat completions (JSON and SSE), errors, admin, metrics.

Clients are the official openai SDK and a plain HTTP client, talking to the ASGI app in process.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.chat import failure, reply
from tests.builders.doubles import FakeAdapter, Step
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli.router import build_service
from jesus.logic.allowance import Allowance, CallPrice
from jesus.logic.routing import RoutePlan
from jesus.router import RoutedAdapter, Router, RouterMetrics, RunLedger
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.service import RouterService, build_app
from jesus.runner import AgentTask, ModelCallError, RunOutcome, execute_run
from jesus.runner.http_model import RouterHttpModelClient
from jesus.specs import load_text
from jesus_adapters.errors import ErrorKind
from jesus_adapters.types import ChatRequest, Message

ROUTER = "http://router.test"
ADMIN = "admin-secret"
ROUTER_SECRETS = Path("/nonexistent/secrets")
HELLO_REQUEST = ChatRequest(messages=(Message("user", "hi"),))


def make_service(primary: list[Step], fallback: list[Step] | None = None) -> RouterService:
    registry = CollectorRegistry()
    router = Router(
        {
            "primary": RoutedAdapter("primary", FakeAdapter(primary), CallPrice(1_000_000, 2_000_000)),
            "fallback": RoutedAdapter("fallback", FakeAdapter(fallback or [reply("backup")]), CallPrice()),
        },
        metrics=RouterMetrics(registry),
    )
    return RouterService(router, RunRegistry(), registry, admin_token=ADMIN)


def grant(service: RouterService, allowance: Allowance | None = None) -> str:
    plan = RoutePlan(chain=("primary", "fallback"))
    return service.registry.register(
        RunRoute("run-a", "team-a", plan, RunLedger("run-a", allowance or Allowance()))
    )


@pytest.fixture
async def http() -> AsyncIterator[tuple[RouterService, httpx2.AsyncClient]]:
    service = make_service([reply("hello from the router", input_tokens=7, output_tokens=3)])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        yield service, client


def openai_sdk(service: RouterService, client: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    """The OpenAI SDK with a fresh run token, speaking to the router in-process through `client`."""
    return openai.AsyncOpenAI(
        base_url=f"{ROUTER}/v1", api_key=grant(service), http_client=client, max_retries=0
    )


def chat(**extra: object) -> dict[str, object]:
    return {"model": "any", "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_a_call_without_a_known_token_is_refused(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    _, client = http
    missing = await client.post("/v1/chat/completions", json=chat())
    unknown = await client.post("/v1/chat/completions", json=chat(), headers={"authorization": "Bearer nope"})
    assert missing.status_code == unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "Unauthenticated"


async def test_the_openai_sdk_gets_an_answer_and_the_call_record(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    service, client = http
    sdk = openai_sdk(service, client)
    completion = await sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "hello from the router"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    record = (completion.model_extra or {})["jesus"]
    assert record["adapter"] == "primary"
    assert record["costMicros"] == 13  # 7 x 1.00 + 3 x 2.00 per million, rounded up


async def test_a_stream_is_served_as_server_sent_events(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    service, client = http
    sdk = openai_sdk(service, client)
    stream = await sdk.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = ""
    usage = None
    finish = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
            assert (chunk.model_extra or {})["jesus"]["streamed"] is True
    assert text.split() == ["hello", "from", "the", "router"]
    assert finish == "stop"
    assert usage is not None
    assert usage.total_tokens == 10


async def test_a_spent_allowance_is_a_403_that_stops_the_runner(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    service, client = http
    # The first call's prompt takes at most 34 tokens (ADR 14) and it uses 10; then 30 are left, too few.
    token = grant(service, Allowance(max_tokens=40))
    headers = {"authorization": f"Bearer {token}"}
    assert (await client.post("/v1/chat/completions", json=chat(), headers=headers)).status_code == 200
    refused = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AllowanceExceeded"
    assert refused.json()["jesus"]["outcome"] == "AllowanceExceeded"


async def test_a_bad_request_body_names_the_field(http: tuple[RouterService, httpx2.AsyncClient]) -> None:
    service, client = http
    headers = {"authorization": f"Bearer {grant(service)}"}
    no_messages = await client.post("/v1/chat/completions", json={"model": "x"}, headers=headers)
    bad_role = await client.post(
        "/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]}, headers=headers
    )
    not_json = await client.post("/v1/chat/completions", content=b"{", headers=headers)
    assert [r.status_code for r in (no_messages, bad_role, not_json)] == [400, 400, 400]
    assert "messages" in no_messages.json()["error"]["message"]
    assert "messages[0].role" in bad_role.json()["error"]["message"]


async def test_when_every_adapter_fails_the_status_says_so() -> None:
    service = make_service([failure(ErrorKind.OVERLOADED)], [failure(ErrorKind.TIMEOUT)])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        headers = {"authorization": f"Bearer {grant(service)}"}
        answer = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        streamed = await client.post("/v1/chat/completions", json=chat(stream=True), headers=headers)
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "Timeout"
    assert [a["adapter"] for a in answer.json()["jesus"]["attempts"]] == ["primary"] * 2 + ["fallback"] * 2
    # Both breakers opened after the first call's failures; the stream fails before its first event.
    assert streamed.status_code == 503
    assert streamed.json()["error"]["code"] == "NoAdapterAvailable"


async def test_metrics_count_calls_and_fallbacks() -> None:
    service = make_service([failure(ErrorKind.OVERLOADED)])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {grant(service)}"}
        )
        text = (await client.get("/metrics")).text
    assert 'jesus_router_calls_total{adapter="fallback",outcome="ok",provider="fake"} 1.0' in text
    assert 'jesus_router_fallbacks_total{from_adapter="primary",to_adapter="fallback"} 1.0' in text


async def test_the_admin_api_registers_runs_from_route_policies() -> None:
    specs = load_text(to_yaml(scripted_adapter("scripted", text="admin route works"), route_policy("route")))
    service = build_service(
        specs, live=False, secrets_dir=ROUTER_SECRETS, admin_token=ADMIN, registry=CollectorRegistry()
    )
    transport = httpx2.ASGITransport(app=build_app(service))
    async with httpx2.AsyncClient(transport=transport, base_url=ROUTER) as client:
        body = {
            "run": "r1",
            "routePolicy": "route",
            "dataClassification": "internal",
            "maxCostMicros": 100_000,
        }
        denied = await client.post("/admin/v1/runs", json=body, headers={"authorization": "Bearer wrong"})
        created = await client.post("/admin/v1/runs", json=body, headers={"authorization": f"Bearer {ADMIN}"})
        unknown = await client.post(
            "/admin/v1/runs",
            json=body | {"routePolicy": "ghost"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        token = created.json()["token"]
        answer = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {token}"}
        )
        revoked = await client.delete(
            "/admin/v1/runs", params={"token": token}, headers={"authorization": f"Bearer {ADMIN}"}
        )
        after = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {token}"}
        )
    assert denied.status_code == 401
    assert created.status_code == 201
    assert created.json()["chain"] == ["default/scripted"]
    assert unknown.status_code == 409
    assert answer.json()["choices"][0]["message"]["content"] == "admin route works"
    assert revoked.status_code == 200
    spent = answer.json()["jesus"]
    # What the token's one call metered, for the operator to charge an attempt that could not report.
    assert spent["costMicros"] > 0
    assert revoked.json()["metered"] == {
        "tokens": spent["inputTokens"] + spent["outputTokens"],
        "costMicros": spent["costMicros"],
        "inFlightTokens": 0,
        "inFlightCostMicros": 0,
    }
    assert after.status_code == 401


async def test_a_runner_runs_through_the_router_over_http(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    service, client = http
    model = RouterHttpModelClient(ROUTER, grant(service), http_client=client)
    record = await execute_run(AgentTask(run="run-a", namespace="team-a", instructions="Say hello."), model)
    assert record.outcome is RunOutcome.SUCCEEDED
    assert record.final_answer == "hello from the router"
    assert record.calls[0]["adapter"] == "primary"
    assert record.cost_micros == 13


async def test_a_runner_over_http_stops_when_the_allowance_is_spent(
    http: tuple[RouterService, httpx2.AsyncClient],
) -> None:
    service, client = http
    model = RouterHttpModelClient(ROUTER, grant(service, Allowance(max_tokens=1)), http_client=client)
    record = await execute_run(AgentTask(run="run-a", namespace="team-a", instructions="Say hello."), model)
    assert record.outcome is RunOutcome.LIMIT_EXCEEDED
    assert "token allowance exhausted" in record.reason
    assert json.dumps(record.calls)


async def test_the_runner_client_retries_a_refused_connection_only() -> None:
    attempts: list[str] = []
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "after a restart"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "jesus": {"adapter": "primary"},
    }

    def answer(request: httpx2.Request) -> httpx2.Response:
        attempts.append(request.url.path)
        if len(attempts) < 3:
            raise httpx2.ConnectError("connection refused", request=request)
        return httpx2.Response(200, json=completion)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as client:
        model = RouterHttpModelClient(ROUTER, "token", http_client=client, sleep=sleep)
        answered = await model.complete(HELLO_REQUEST)
    assert answered.response.content == "after a restart"
    assert len(attempts) == 3
    assert slept == [0.5, 1.0]

    def broken(request: httpx2.Request) -> httpx2.Response:
        attempts.append("read")
        raise httpx2.ReadError("connection reset", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(broken)) as client:
        model = RouterHttpModelClient(ROUTER, "token", http_client=client, sleep=sleep)
        with pytest.raises(ModelCallError) as caught:
            await model.complete(HELLO_REQUEST)
    assert caught.value.kind == "Connection"
    assert attempts.count("read") == 1, "a call that may have reached the router is not repeated"
