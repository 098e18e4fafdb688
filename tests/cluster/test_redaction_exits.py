"""Redaction at every exit, on the real API server with the operator, router and runner as processes
(ADR 0015): a run whose task, tool output and provider error all carry planted secrets and personal
data leaves none of them in its artifacts, its status, the namespace's Events, or any log line of the
operator, the router or the runner; nor does the prompt that reaches the provider carry them.

The first adapter of the chain is an OpenAI-compatible endpoint served locally that answers every call
with a 500 echoing the request's API key (and the other planted values); the second is scripted: it
calls the MCP workspace server's `read_file` on a file full of planted values, then answers.
"""

from __future__ import annotations

import base64
import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import team_budget
from tests.builders.manifest import manifest
from tests.builders.routes import failover_route
from tests.cluster.harness import REPO, operator_world, policies_allowing
from tests.providers.behaviours import Fail
from tests.providers.openai_wire import OpenAIWire
from tests.providers.server import FakeProvider, serve_in_thread

from jesus.devcluster import ControlPlane

KEY = "sk-ant-api03-PlantedKey" + "x" * 40
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.cGxhbnRlZC1zaWduYXR1cmU"
EMAIL = "grace.hopper@example.org"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
PLANTED = {"key": KEY, "jwt": JWT, "email": EMAIL, "phone": PHONE, "card": CARD}
TEAM = "redaction"
WORKSPACE_SERVER = REPO / "examples" / "tools" / "workspace_server.py"


def planted_in(text: str) -> list[str]:
    """Which planted values `text` holds (the phone and card also without their spaces)."""
    found = [name for name, value in PLANTED.items() if value in text]
    found += [f"{name} (digits)" for name in ("phone", "card") if PLANTED[name].replace(" ", "") in text]
    return found


def leaky_provider() -> AbstractContextManager[FakeProvider]:
    """An OpenAI-compatible server answering every call with an error that echoes the key (and the
    other planted values)."""
    message = f"Incorrect API key provided: {KEY}. Token {JWT} of {EMAIL}, phone {PHONE}, card {CARD}"
    return serve_in_thread(OpenAIWire("openai"), default=Fail(500, message), strict=False)


def objects(base_url: str, tool_args: list[str]) -> list[dict[str, Any]]:
    leaky = manifest(
        "ModelAdapter",
        "leaky",
        {
            "provider": "openai-compatible",
            "model": "leaky-1",
            "endpoint": base_url,
            "credentialsSecretRef": {"name": "leaky-key", "key": "apiKey"},
            "pricing": {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "2.00"},
            "dataClassifications": ["public", "internal"],
        },
    )
    canned = scripted_adapter(
        "canned",
        replies=[
            {"toolCalls": [{"name": "read_file", "arguments": {"path": "customer.txt"}}]},
            {"text": f"Filed. The customer is {EMAIL}, key {KEY}."},
        ],
    )
    run = agent_run("leaky-run", policy="leaky-route")
    run["spec"].update(
        owner={"user": "owner@example.com", "team": TEAM},
        task={"instructions": f"Call {PHONE} about card {CARD}; use key {KEY} and token {JWT}, cc {EMAIL}."},
        tools=[{"name": "workspace", "stdio": {"command": sys.executable, "args": tool_args}}],
        limits={"maxCost": "0.50", "maxTurns": 4, "timeoutSeconds": 60},
        retryPolicy={"maxRetries": 0, "backoffSeconds": 0},
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "leaky-key"},
        "data": {"apiKey": base64.b64encode(KEY.encode()).decode()},
    }
    route = failover_route("leaky-route", "leaky", "canned")
    return [secret, leaky, canned, route, team_budget(TEAM, TEAM, "10.00"), run]


def test_planted_secrets_and_personal_data_leave_through_no_exit(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "customer.txt").write_text(
        f"Customer record\n{EMAIL}\n{PHONE}\ncard: {CARD}\napi_key={KEY}\n{JWT}\n"
    )
    tool_args = [str(WORKSPACE_SERVER), "--root", str(workspace)]
    with (
        leaky_provider() as provider,
        operator_world(
            control_plane,
            tmp_path,
            "redaction",
            objects(provider.base_url, tool_args),
            router_environment={"LEAKY_KEY_APIKEY": KEY},
            policies=policies_allowing(tool_args, tmp_path),
        ) as world,
    ):
        status = world.wait_phase("leaky-run", "Succeeded", "Failed", timeout=120)
        assert status["phase"] == "Succeeded", world.describe()
        calls = status["calls"]
        assert [c["adapter"] for c in calls] == ["canned", "canned"]
        assert all(c["fallbacks"][0]["adapter"] == "leaky" for c in calls), "the provider error was met"
        events = world.plane.kubectl("get", "events", "-n", world.namespace, "-o", "json").stdout
        run = world.plane.kubectl("get", "agentrun", "leaky-run", "-n", world.namespace, "-o", "json").stdout
    runtime = world.runtime.runtime
    assert runtime is not None
    pod_directories = [runtime.workdir / name for name in runtime.started]
    artifacts = {p.name: p.read_text() for d in pod_directories for p in (d / "artifacts").glob("*")}
    runner_logs = "\n".join((d / "output.log").read_text() for d in pod_directories)
    record = json.loads(artifacts["result.json"])

    # Not vacuous: the provider got the key, the tool read the file, the error reached the record.
    assert provider.requests and provider.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert [t["tool"] for t in record["toolCalls"]] == ["read_file"]
    assert "[REDACTED:email]" in record["toolCalls"][0]["result"]
    attempt_errors = [a["error"] for c in record["calls"] for a in c["attempts"] if a["error"]]
    assert attempt_errors and all("Incorrect API key provided: [REDACTED:" in e for e in attempt_errors)
    router_log = world.router.log.read_text()
    assert "Model call attempt failed" in router_log and "[REDACTED:" in router_log

    exits = {
        **{f"artifact {name}": text for name, text in artifacts.items()},
        "AgentRun (status)": json.dumps(json.loads(run)["status"]),
        "Events": events,
        "operator log": world.operator.log.read_text(),
        "router log": router_log,
        "runner log": runner_logs,
        "prompts the provider received": json.dumps([r.json for r in provider.requests]),
    }
    leaks = {where: found for where, text in exits.items() if (found := planted_in(text))}
    assert not leaks, leaks
