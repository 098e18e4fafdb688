"""The runner as its Job's pod runs it (`jesus runner`): configured by the environment the operator
sets, model calls through the router over HTTP, the result in the termination message either way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.agentrun import agent_run
from tests.builders.chat import reply
from tests.builders.doubles import FakeAdapter

from jesus.cli import main
from jesus.logic import sealing
from jesus.logic.allowance import CallPrice
from jesus.logic.reflection import Item
from jesus.logic.routing import RoutePlan
from jesus.router import RoutedAdapter, Router, RouterMetrics, RunLedger
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.service import RouterService, build_app
from jesus.runner import http_model, pod
from jesus.runner.pod import PodEnvironmentError, run_pod

ROUTER = "http://router.test"


def environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "JESUS_RUN_NAMESPACE": "team",
        "JESUS_RUN_NAME": "run",
        "JESUS_RUN_UID": "uid-1",
        "JESUS_RUN_SPEC": json.dumps(agent_run()["spec"]),
        "JESUS_ROUTER_URL": ROUTER,
        "JESUS_ROUTER_TOKEN": "token",
        "JESUS_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
        "JESUS_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "-"}


def termination(tmp_path: Path) -> dict[str, Any]:
    message: dict[str, Any] = json.loads((tmp_path / "termination-log").read_text())
    return message


@pytest.fixture
async def router(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RouterService]:
    """A router service in process; the pod's HTTP client reaches it through an ASGI transport."""
    registry = CollectorRegistry()
    adapter = FakeAdapter([reply("the summary", input_tokens=20, output_tokens=4)])
    service = RouterService(
        Router(
            {"a": RoutedAdapter("a", adapter, CallPrice(1_000_000, 1_000_000))},
            metrics=RouterMetrics(registry),
        ),
        RunRegistry(),
        registry,
        admin_token="admin",
    )
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        real = http_model.RouterHttpModelClient

        def in_process(url: str, token: str, **kwargs: Any) -> http_model.RouterHttpModelClient:
            return real(url, token, http_client=client, **kwargs)

        monkeypatch.setattr(pod, "RouterHttpModelClient", in_process)
        yield service


async def test_a_run_calls_the_router_and_reports_in_its_termination_message(
    tmp_path: Path, router: RouterService
) -> None:
    token = router.registry.register(RunRoute("run", "team", RoutePlan(chain=("a",)), RunLedger("run")))
    code = await run_pod(environment(tmp_path, JESUS_ROUTER_TOKEN=token))
    assert code == 0
    message = termination(tmp_path)
    assert message["outcome"] == "Succeeded"
    assert message["costMicros"] == 24  # 20 + 4 tokens at 1.00 per million, rounded up
    assert message["specDigest"].startswith("sha256:")
    assert [c["adapter"] for c in message["calls"]] == ["a"]
    assert (tmp_path / "artifacts" / "result.json").is_file()


async def test_a_sealed_token_is_opened_with_the_namespace_key(tmp_path: Path, router: RouterService) -> None:
    token = router.registry.register(RunRoute("run", "team", RoutePlan(chain=("a",)), RunLedger("run")))
    key = sealing.new_key()
    sealed = sealing.seal(key, token, 1_800_000_000)
    env = environment(
        tmp_path, JESUS_ROUTER_TOKEN="-", JESUS_ROUTER_TOKEN_SEALED=sealed, JESUS_RUNNER_KEY=key
    )
    assert await run_pod(env) == 0
    assert termination(tmp_path)["outcome"] == "Succeeded"


async def test_a_sealed_token_and_a_key_that_do_not_match_are_refused_by_name(tmp_path: Path) -> None:
    sealed = sealing.seal(sealing.new_key(), "jr2.x.y", 1_800_000_000)
    # Careless: the namespace's key was replaced after the Job was made.
    other = environment(tmp_path, JESUS_ROUTER_TOKEN_SEALED=sealed, JESUS_RUNNER_KEY=sealing.new_key())
    with pytest.raises(PodEnvironmentError, match=r"was not sealed with the key in \$JESUS_RUNNER_KEY"):
        await run_pod(other)
    # Careless: the Secret is missing, so the variable is empty.
    with pytest.raises(PodEnvironmentError, match=r"JESUS_RUNNER_KEY is not set.*jesus-runner-key"):
        await run_pod(environment(tmp_path, JESUS_ROUTER_TOKEN_SEALED=sealed, JESUS_RUNNER_KEY=""))
    # Hostile: a key that is not one, and a sealed token altered by one character.
    with pytest.raises(PodEnvironmentError, match="is not a runner key"):
        await run_pod(environment(tmp_path, JESUS_ROUTER_TOKEN_SEALED=sealed, JESUS_RUNNER_KEY="hunter2"))
    key = sealing.new_key()
    tampered = sealing.seal(key, "jr2.x.y", 1_800_000_000)
    tampered = tampered[:-5] + ("A" if tampered[-5] != "A" else "B") + tampered[-4:]
    with pytest.raises(PodEnvironmentError, match="or the value was altered"):
        await run_pod(environment(tmp_path, JESUS_ROUTER_TOKEN_SEALED=tampered, JESUS_RUNNER_KEY=key))


async def test_a_token_the_router_does_not_know_fails_the_run_with_a_record(
    tmp_path: Path, router: RouterService
) -> None:
    code = await run_pod(environment(tmp_path, JESUS_ROUTER_TOKEN="stolen"))
    assert code == 1
    message = termination(tmp_path)
    assert message["outcome"] == "ModelFailed"
    assert message["reason"].endswith("has expired")


async def test_a_spec_that_does_not_parse_is_reported_not_raised(tmp_path: Path) -> None:
    assert await run_pod(environment(tmp_path, JESUS_RUN_SPEC="{not json")) == 1
    message = termination(tmp_path)
    assert message["outcome"] == "InvalidSpec"
    assert message["reason"].startswith("JESUS_RUN_SPEC: ")


async def test_a_spec_that_does_not_validate_names_the_field(tmp_path: Path) -> None:
    spec = agent_run()["spec"]
    spec["limits"]["maxCost"] = "a lot"
    assert await run_pod(environment(tmp_path, JESUS_RUN_SPEC=json.dumps(spec))) == 1
    message = termination(tmp_path)
    assert message["outcome"] == "InvalidSpec"
    assert "maxCost" in message["reason"]


async def test_a_missing_spec_variable_is_an_invalid_spec(tmp_path: Path) -> None:
    assert await run_pod(environment(tmp_path, JESUS_RUN_SPEC="-")) == 1
    assert "environment variable JESUS_RUN_SPEC is not set" in termination(tmp_path)["reason"]


@pytest.mark.parametrize(
    "variable", ["JESUS_RUN_NAMESPACE", "JESUS_RUN_NAME", "JESUS_ROUTER_URL", "JESUS_ROUTER_TOKEN"]
)
async def test_a_missing_variable_is_named(tmp_path: Path, variable: str) -> None:
    with pytest.raises(PodEnvironmentError, match=f"environment variable {variable} is not set"):
        await run_pod(environment(tmp_path, **{variable: ""}))


def test_the_runner_command_explains_a_missing_variable_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JESUS_RUN_NAME")
    assert main(["runner"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: environment variable JESUS_RUN_NAME is not set (the operator's Job sets it)"
    )


@pytest.mark.parametrize(
    ("lessons", "offered", "warning"),
    [
        ('[{"id": "l-1", "text": "Quote the figures."}]', True, None),
        ("{not json", False, "JESUS_LESSONS is not JSON"),
    ],
)
async def test_the_pod_offers_the_operators_lessons_reflects_and_reports_the_verdict(
    tmp_path: Path, router: RouterService, lessons: str, offered: bool, warning: str | None
) -> None:
    token = router.registry.register(RunRoute("run", "team", RoutePlan(chain=("a",)), RunLedger("run")))
    spec = json.dumps(agent_run(reflection="Checklist")["spec"])
    code = await run_pod(
        environment(tmp_path, JESUS_ROUTER_TOKEN=token, JESUS_RUN_SPEC=spec, JESUS_LESSONS=lessons)
    )
    assert code == 0
    transcript = json.loads((tmp_path / "artifacts" / "transcript.json").read_text())
    assert ('<lesson id="l-1">Quote the figures.</lesson>' in transcript[1]["content"]) is offered
    # The fake model answers the reflection with prose: the verdict says so, the run is unharmed.
    message = termination(tmp_path)
    assert message["outcome"] == "Succeeded"
    assert message["reflection"] == {"passed": False, "failed": [item.value for item in Item]}
    result = json.loads((tmp_path / "artifacts" / "result.json").read_text())
    assert result["reflection"]["items"][0]["reason"].startswith("the reflection is not JSON")
    assert (warning in result["warnings"]) if warning else not result["warnings"]
