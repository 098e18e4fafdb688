"""Two `jesus router` processes behind one address share one Redis (`--redis-url`, here through
$JESUS_ROUTER_REDIS_URL) and one admin token. One run's many concurrent calls, spread over both, never
spend more than its allowance (the sums of the call records say so); a token revoked through one is
refused by both; with Redis stopped every call fails closed with 503 `SharedStoreUnavailable` and a
Retry-After, and calls succeed again once it is back; garbage in a run's account is refused by both,
naming the key, and so is an expired token. A malformed Redis URL stops the program before it starts,
naming the option and not the password."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.processes import JESUS, router_process
from tests.builders.redis_server import RedisServer
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.router.tokens import TokenSigner

pytestmark = pytest.mark.e2e

ADMIN = "e2e-replicas-admin"
CALLS = 80
IN_FLIGHT = 8
# Each call spends 10 input + 1 output tokens at 1.00 / 2.00 per million: 12 micros. It reserves its
# worst case: 34 input tokens (an upper bound of "hi") and max_tokens 5 out (fewer when little is left;
# one output token, so that a provider never reports more than a clamped call may).
MAX_TOKENS = 400
MAX_COST_MICROS = 400


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the module's tests (each registers a run of its own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, shared_redis: RedisServer
) -> Iterator[tuple[str, str]]:
    """Two router processes over the same specs, the same admin token and the same Redis; their URLs.
    Started once for the module: a router takes seconds to start."""
    folder = tmp_path_factory.mktemp("replicas")
    specs = folder / "specs.yaml"
    replies = [{"text": "ok", "usage": {"inputTokens": 10, "outputTokens": 1}}] * 200
    specs.write_text(to_yaml(scripted_adapter("model", replies=replies), route_policy("route", ("model",))))
    environment = {"JESUS_ROUTER_ADMIN_TOKEN": ADMIN, "JESUS_ROUTER_REDIS_URL": shared_redis.url}
    with ExitStack() as stack:
        urls = [
            stack.enter_context(router_process(specs, secrets_dir=folder, environment=environment))[0]
            for _ in "ab"
        ]
        yield urls[0], urls[1]


def register(url: str, run: str, **limits: int) -> str:
    """Register a run through the admin API of one replica; its token."""
    answer = httpx.post(
        f"{url}/admin/v1/runs",
        json={"run": run, "routePolicy": "route", **limits},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def call(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


async def spread_calls(urls: tuple[str, str], token: str) -> list[httpx.Response]:
    """`CALLS` calls of one run, `IN_FLIGHT` at a time, alternating between the replicas (waves, so that
    both replicas take part before the allowance is spent)."""
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:
        for wave in range(0, CALLS, IN_FLIGHT):
            answers += await asyncio.gather(
                *(
                    client.post(
                        f"{urls[i % 2]}/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
                        headers={"authorization": f"Bearer {token}"},
                    )
                    for i in range(wave, wave + IN_FLIGHT)
                )
            )
    return answers


def test_one_runs_calls_spread_over_two_replicas_never_pass_its_allowance(replicas: tuple[str, str]) -> None:
    token = register(replicas[0], "spread", maxTokens=MAX_TOKENS, maxCostMicros=MAX_COST_MICROS)
    answers = asyncio.run(spread_calls(replicas, token))
    served = [(i % 2, a.json()["jesus"]) for i, a in enumerate(answers) if a.status_code == 200]
    refused = [a.json()["error"] for a in answers if a.status_code != 200]
    tokens = sum(r["inputTokens"] + r["outputTokens"] for _, r in served)
    cost = sum(r["costMicros"] for _, r in served)
    assert tokens <= MAX_TOKENS and cost <= MAX_COST_MICROS, (tokens, cost)
    assert {replica for replica, _ in served} == {0, 1}, "both replicas served some of the run's calls"
    # One replica alone would pass about 400 / 12 = 33 of its 40 calls: both together 66, 792 micros.
    assert len(served) + len(refused) == CALLS and len(served) <= 400 // 12
    assert {(e["code"], e["message"].split(":")[0]) for e in refused} <= {
        ("AllowanceExceeded", "cost allowance exhausted"),
        ("AllowanceExceeded", "token allowance exhausted"),
        ("AllowanceExceeded", "cost allowance too small for another call"),
    }
    # What the run spent is what Redis holds, not twice it.
    later = call(replicas[1], token)
    assert later.status_code == 403 and later.json()["error"]["code"] == "AllowanceExceeded"


def test_a_token_revoked_through_one_replica_is_refused_by_both(replicas: tuple[str, str]) -> None:
    token = register(replicas[0], "revoked")
    answered = [call(url, token) for url in replicas]
    assert [a.status_code for a in answered] == [200, 200]
    revoked = httpx.delete(
        f"{replicas[1]}/admin/v1/runs", params={"token": token}, headers={"authorization": f"Bearer {ADMIN}"}
    )
    # Revoking answers what the token spent through either replica (their account is shared in Redis).
    assert revoked.status_code == 200
    metered = revoked.json()["metered"]
    assert metered["costMicros"] == sum(a.json()["jesus"]["costMicros"] for a in answered) > 0
    assert (metered["inFlightTokens"], metered["inFlightCostMicros"]) == (0, 0)
    for url in replicas:
        refused = call(url, token)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "Unauthenticated"


def test_redis_stopped_fails_calls_closed_and_they_succeed_once_it_is_back(
    replicas: tuple[str, str], shared_redis: RedisServer
) -> None:
    redis_server = shared_redis
    token = register(replicas[0], "outage")
    assert call(replicas[1], token).status_code == 200
    redis_server.stop(keep_data=True)
    for url in replicas:
        refused = call(url, token)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "2"
        error = refused.json()["error"]
        assert error["code"] == "SharedStoreUnavailable"
        assert f"the shared store redis://127.0.0.1:{redis_server.port}/0 failed" in error["message"]
    redis_server.start()
    assert [call(url, token).status_code for url in replicas] == [200, 200]


def test_garbage_in_redis_and_an_expired_token_are_refused_by_both(
    replicas: tuple[str, str], shared_redis: RedisServer
) -> None:
    spoilt = register(replicas[0], "spoilt")
    key = f"jesus:v1:run:{hashlib.sha256(spoilt.encode()).hexdigest()}"
    with shared_redis.client() as client:
        client.hset(key, "reservedCostMicros", "a lot")
    for url in replicas:
        refused = call(url, spoilt)
        assert refused.status_code == 503
        assert (
            key in refused.json()["error"]["message"]
            and "field reservedCostMicros" in refused.json()["error"]["message"]
        )
    brief = register(replicas[1], "brief", ttlSeconds=5)
    grant = TokenSigner(ADMIN).verify(brief, now=0)
    assert grant is not None
    assert call(replicas[0], brief).status_code == 200
    # Each process keeps its own clock (under the date guard, faketime starts every process's clock at
    # the same moment when it starts), so the token's end is the routers' to judge: both must refuse it
    # once its five seconds have passed for them, well within this bound.
    deadline = time.monotonic() + 60
    statuses = [call(url, brief).status_code for url in replicas]
    while statuses != [401, 401] and time.monotonic() < deadline:
        time.sleep(0.5)
        statuses = [call(url, brief).status_code for url in replicas]
    assert statuses == [401, 401]


def test_a_malformed_redis_url_stops_the_program_naming_the_option(tmp_path: Path) -> None:
    specs = tmp_path / "specs.yaml"
    specs.write_text(to_yaml(scripted_adapter("model"), route_policy("route", ("model",))))
    finished = subprocess.run(
        [str(JESUS), "router", "--specs", str(specs), "--redis-url", "redis://:hunter2@redis:port/0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "error: --redis-url (or $JESUS_ROUTER_REDIS_URL): not a URL" in finished.stderr
    assert "hunter2" not in finished.stderr + finished.stdout
