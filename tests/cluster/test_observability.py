"""Traces and logs end to end: a run through operator, runner and router, with a fallback taken, is one
trace in a real Jaeger with the right parents, names and GenAI attributes; every log line the three
programs print is JSON of the one schema, and the run's lines carry its trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.jaeger_server import JaegerServer
from tests.builders.routes import failover_route
from tests.cluster.harness import OperatorWorld, operator_world

from jesus.devcluster import ControlPlane
from jesus.logic import runs
from jesus.telemetry import LOG_SCHEMA

OBJECTS = [
    answering_adapter("flaky", errors=("Overloaded",)),
    answering_adapter("backup", replies=50, price="0.50"),
    failover_route("with-fallback", "flaky", "backup"),
    team_budget("team-a", "team-a", "100.00"),
]
SERVICES = {"jesus-operator", "jesus-router", "jesus-runner"}


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    server = JaegerServer(tmp_path_factory.mktemp("jaeger"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(
    control_plane: ControlPlane, jaeger: JaegerServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorWorld]:
    # The operator and the router export to Jaeger; the runner learns where from the operator, which
    # hands its OTEL_* settings to every runner Job. A short batch delay makes the test quick.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with operator_world(
        control_plane,
        tmp_path_factory.mktemp("observability"),
        "observability",
        OBJECTS,
        operator_environment=otel,
        router_environment=otel,
    ) as world:
        yield world


@pytest.fixture(scope="module")
def fell_back(world: OperatorWorld) -> dict[str, Any]:
    """A run the first adapter fails and the fallback serves; its final status."""
    world.apply(hello_run("traced", team="team-a", route_name="with-fallback"))
    status = world.wait_phase("traced", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", world.describe()
    assert status["calls"][0]["fallbacks"][0]["adapter"] == "flaky"
    return status


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def parent_of(span: dict[str, Any]) -> str | None:
    parents = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    return parents[0] if parents else None


def complete(trace: dict[str, Any]) -> bool:
    """The run's trace once every program's spans are in, the router's two attempts included."""
    services = {p["serviceName"] for p in trace["processes"].values()}
    attempts = [s for s in trace["spans"] if "jesus.adapter" in tags(s) and "jesus.run" not in tags(s)]
    return services == SERVICES and len(attempts) == 2


def test_a_run_is_one_trace_across_operator_runner_and_router(
    world: OperatorWorld, jaeger: JaegerServer, fell_back: dict[str, Any]
) -> None:
    trace_id = fell_back["traceId"]
    uid = world.plane.kubectl(
        "get", "-n", world.namespace, "agentrun", "traced", "-o", "jsonpath={.metadata.uid}"
    ).stdout
    assert trace_id == runs.trace_id(uid)
    trace = jaeger.wait_for_trace(trace_id, complete, what="the run's trace from all three programs")
    service = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    spans = {s["spanID"]: s for s in trace["spans"]}
    assert all(s["traceID"] == trace_id for s in spans.values())

    def one(name: str, program: str) -> dict[str, Any]:
        found = [
            s for s in spans.values() if s["operationName"] == name and service[s["processID"]] == program
        ]
        assert len(found) == 1, (name, program, [(s["spanID"], s["references"], tags(s)) for s in found])
        return found[0]

    # The operator: admission is the root, the attempt's start its child, with the Job's TRACEPARENT id.
    # A decision that left the run waiting (its Budget not in the operator's cache yet, say) is an
    # `admit` span under the root; the one that admitted it is the root, once.
    admissions = [s for s in spans.values() if s["operationName"] == "admit"]
    (admit,) = [s for s in admissions if parent_of(s) is None]
    assert service[admit["processID"]] == "jesus-operator"
    assert admit["spanID"] == runs.admission_span_id(uid)
    assert tags(admit)["jesus.admission.outcome"] == "Admitted"
    for waited in (s for s in admissions if s is not admit):
        assert parent_of(waited) == admit["spanID"]
        assert tags(waited)["jesus.admission.outcome"] != "Admitted", tags(waited)
    events = {field["value"] for log in admit["logs"] for field in log["fields"] if field["key"] == "event"}
    assert {"policy decision", "budget hold"} <= events
    start = one("start attempt", "jesus-operator")
    assert parent_of(start) == admit["spanID"]
    assert start["spanID"] == runs.attempt_span_id(uid, 1)
    # The runner: the agent's invocation under the attempt, a turn under it.
    invoke = one("invoke_agent traced", "jesus-runner")
    assert parent_of(invoke) == start["spanID"]
    assert tags(invoke)["gen_ai.operation.name"] == "invoke_agent"
    assert tags(invoke)["jesus.outcome"] == "Succeeded"
    turn = one("turn", "jesus-runner")
    assert parent_of(turn) == invoke["spanID"]
    # The router: the call under the turn, an attempt span per adapter tried under the call.
    # The call span names its run; the attempt spans under it do not.
    (call,) = [
        s for s in spans.values() if service[s["processID"]] == "jesus-router" and "jesus.run" in tags(s)
    ]
    assert tags(call)["jesus.attempts"] == 2
    assert parent_of(call) == turn["spanID"]
    assert call["operationName"] == "chat backup-model"
    # The router reads adapters from the cluster: their names are namespaced.
    flaky, backup = f"{world.namespace}/flaky", f"{world.namespace}/backup"
    assert json.loads(tags(call)["jesus.fallbacks"]) == [f"{flaky}->{backup}"]
    attempts = sorted(
        (s for s in spans.values() if parent_of(s) == call["spanID"]), key=lambda s: s["startTime"]
    )
    assert [s["operationName"] for s in attempts] == ["chat flaky-model", "chat backup-model"]
    failed, answered = tags(attempts[0]), tags(attempts[1])
    assert (failed["jesus.adapter"], failed["error.type"], failed["error"]) == (flaky, "Overloaded", True)
    assert answered["jesus.adapter"] == backup
    assert answered["gen_ai.operation.name"] == "chat"
    assert answered["gen_ai.provider.name"] == answered["gen_ai.system"] == "scripted"
    assert answered["gen_ai.request.model"] == "backup-model"
    assert (answered["gen_ai.usage.input_tokens"], answered["gen_ai.usage.output_tokens"]) == (1000, 200)
    assert answered["gen_ai.response.finish_reasons"] == '["stop"]'
    # No prompt text went anywhere: the task's instructions are in no attribute.
    assert "Say hello for traced" not in json.dumps(trace)


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path}:{number} is not JSON: {line[:200]!r}")
    return parsed


def test_every_log_line_is_json_of_the_schema_and_the_runs_lines_carry_its_trace(
    world: OperatorWorld, fell_back: dict[str, Any]
) -> None:
    trace_id = fell_back["traceId"]
    assert world.runtime.runtime is not None
    runner_logs = sorted(world.runtime.runtime.workdir.glob("traced-*/output.log"))
    assert runner_logs, "the runner's pod left no output"
    programs = {
        "operator": world.workdir / "operator.log",
        "router": world.workdir / "router.log",
        "runner": runner_logs[0],
    }
    for program, path in programs.items():
        lines = log_lines(path)
        for line in lines:
            assert set(LOG_SCHEMA) <= set(line), (program, line)
            assert set(line) - set(LOG_SCHEMA) <= {"exception", "stack"}, (program, line)
        about_run = [line for line in lines if line["run"] == "traced"]
        assert about_run, f"the {program} logged nothing about the run"
        assert {line["trace_id"] for line in about_run} == {trace_id}, (program, about_run)
        assert "Say hello for traced" not in path.read_text()  # the prompt is in no log line
    router_lines = log_lines(programs["router"])
    failed = [line for line in router_lines if line["message"].startswith("Model call attempt failed")]
    seen = [(line["adapter"], line["run"], line["trace_id"]) for line in failed]
    assert seen == [(f"{world.namespace}/flaky", "traced", trace_id)]
