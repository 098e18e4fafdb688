"""`jesus router` as a process, as the cluster runs it: specs in, admin registration, a runner over HTTP.

The router answers through a real adapter (openai-compatible, official SDK) from a local fake
provider; the runner side is the official openai SDK, the same client runner pods use.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.processes import router_process
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml
from tests.providers import Fail, FakeProvider, Reply, serve_openai

from jesus.runner import AgentTask, RunOutcome, execute_run
from jesus.runner.http_model import RouterHttpModelClient

pytestmark = pytest.mark.e2e

ADMIN = "e2e-admin-token"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeProvider]:
    """A fake OpenAI-compatible provider: the first call fails with 503, then it answers."""
    async with serve_openai(
        default=Reply(text="served by the upstream", input_tokens=30, output_tokens=6)
    ) as fake:
        fake.script(Fail(503, "overloaded"))
        yield fake


@pytest.fixture
def router(tmp_path: Path, upstream: FakeProvider) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`jesus router` over a chain: the upstream (503 once), then a scripted fallback; its URL and
    process (whose log is readable once the test is done with it)."""
    adapter = openai_adapter("upstream")
    adapter["spec"] |= {"provider": "openai-compatible", "endpoint": upstream.base_url}
    policy = route_policy("route", ("upstream", "backup"))
    policy["spec"]["retries"] = {"maxAttempts": 1}
    specs = tmp_path / "specs.yaml"
    specs.write_text(to_yaml(adapter, scripted_adapter("backup", text="served by the backup"), policy))
    environment = {"JESUS_ROUTER_ADMIN_TOKEN": ADMIN, "OPENAI_KEY_APIKEY": "sk-e2e"}
    with router_process(
        specs, secrets_dir=tmp_path / "none", environment=environment, output=subprocess.PIPE
    ) as served:
        yield served


@pytest.fixture
def router_url(router: tuple[str, subprocess.Popen[bytes]]) -> str:
    """The URL of `router`."""
    return router[0]


async def register(router_url: str, **limits: int) -> str:
    async with httpx.AsyncClient(base_url=router_url, headers={"authorization": f"Bearer {ADMIN}"}) as admin:
        answer = await admin.post("/admin/v1/runs", json={"run": "e2e", "routePolicy": "route", **limits})
    assert answer.status_code == 201, answer.text
    assert answer.json()["chain"] == ["default/upstream", "default/backup"]
    return str(answer.json()["token"])


async def test_a_runner_runs_through_the_router_process(router_url: str, upstream: FakeProvider) -> None:
    token = await register(router_url, maxCostMicros=1_000_000)
    model = RouterHttpModelClient(router_url, token)
    try:
        first = await execute_run(AgentTask(run="e2e", namespace="default", instructions="Say hi."), model)
        second = await execute_run(AgentTask(run="e2e", namespace="default", instructions="Again."), model)
    finally:
        await model.aclose()
    assert first.outcome is RunOutcome.SUCCEEDED
    assert first.final_answer == "served by the backup"
    assert first.fallbacks[0]["from"] == "default/upstream"
    assert second.final_answer == "served by the upstream"
    assert (second.input_tokens, second.output_tokens) == (30, 6)
    assert second.cost_micros > 0
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-e2e", "the router holds the key"


async def test_the_router_process_streams_and_exports_metrics(router_url: str) -> None:
    token = await register(router_url)
    client = openai.AsyncOpenAI(base_url=f"{router_url}/v1", api_key=token, max_retries=0)
    stream = await client.chat.completions.create(
        model="route", messages=[{"role": "user", "content": "stream it"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    await client.close()
    assert "".join(pieces) in {"served by the backup", "served by the upstream"}
    async with httpx.AsyncClient(base_url=router_url) as plain:
        metrics = (await plain.get("/metrics")).text
        refused = await plain.post("/v1/chat/completions", json={"messages": []})
    assert "jesus_router_calls_total" in metrics
    assert refused.status_code == 401
    assert json.loads(refused.text)["error"]["code"] == "Unauthenticated"


async def test_the_router_process_logs_no_line_per_model_call(
    router: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = router
    token = await register(url)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
    for _ in range(4):
        await client.chat.completions.create(model="route", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    process.terminate()
    process.wait(10)
    assert process.stdout is not None
    log = process.stdout.read().decode()
    assert "Starting router" in log, log
    assert "Registered run run=e2e" in log, log
    # httpx logs every request at INFO ("HTTP Request: POST ... 200 OK"); the router turns that off.
    assert "HTTP Request" not in log, log
    lines = [json.loads(line) for line in log.splitlines()]  # every line is JSON of the one schema
    assert not [line for line in lines if line["logger"].startswith(("httpx", "openai"))], log
    # The upstream's one 503 is a failed attempt, and logged as one; the four answered calls are not.
    assert log.count("Model call attempt failed") == 1, log
