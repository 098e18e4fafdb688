"""The operator's spans of a run: the admission that admitted it is the trace's root, each attempt's
start its child with the id the Job's TRACEPARENT names; a decision that lost to a conflict is not
traced; a denial is an error span under the root id; no spec text in any attribute."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from jesus.controllers.agentrun import spans
from jesus.kube import ConflictError, JsonObject
from jesus.logic import runs
from jesus.policy.decision import Decision
from jesus.telemetry.tracing import PinnedIdGenerator

from .test_agentrun_reconcile import NS, Engine, World


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PinnedIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(spans, "tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_an_admitted_run_is_a_root_admission_and_an_attempt_start_under_it(
    exported: InMemorySpanExporter,
) -> None:
    world = World()
    status = await world.reconcile()
    uid = "uid-run"
    assert status["traceId"] == runs.trace_id(uid)
    (admit,) = named(exported, "admit")
    (start,) = named(exported, "start attempt")
    assert admit.parent is None
    assert hex_id(admit.context.trace_id, 32) == status["traceId"]
    assert hex_id(admit.context.span_id, 16) == runs.admission_span_id(uid)
    assert start.parent is not None and start.parent.span_id == admit.context.span_id
    job = world.kube.find("Job", NS, status["jobName"])
    assert job is not None
    traceparent = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert traceparent["TRACEPARENT"] == f"00-{status['traceId']}-{hex_id(start.context.span_id, 16)}-01"
    attributes = dict(admit.attributes or {})
    assert attributes["jesus.admission.outcome"] == "Admitted"
    events = {e.name: dict(e.attributes or {}) for e in admit.events}
    assert events["policy decision"]["jesus.policy.allowed"] is True
    assert events["budget hold"]["jesus.budget"] == f"{NS}/budget"
    assert events["budget hold"]["jesus.budget.amount_micros"] > 0
    everything = json.dumps([dict(s.attributes or {}) for s in exported.get_finished_spans()])
    assert "Summarise" not in everything  # the task's text is in no attribute


async def test_a_second_reconcile_adds_no_span(exported: InMemorySpanExporter) -> None:
    world = World()
    await world.reconcile()
    await world.reconcile()
    assert [s.name for s in exported.get_finished_spans()] == ["start attempt", "admit"]


async def test_a_decision_that_lost_to_a_conflict_is_not_traced(
    exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    real = world.kube.replace_status
    failures = iter([True])

    async def conflicting(obj: JsonObject) -> JsonObject:
        if next(failures, False):
            raise ConflictError(409, "Conflict", "changed")
        return await real(obj)

    monkeypatch.setattr(world.kube, "replace_status", conflicting)
    await world.reconcile()
    assert len(named(exported, "admit")) == 1
    assert len(named(exported, "start attempt")) == 1


async def test_a_denied_run_is_an_error_admission_under_the_root_id(exported: InMemorySpanExporter) -> None:
    world = World(Engine(Decision(allow=False, reasons=("no",), warnings=(), engine="fake")))
    await world.reconcile()
    (admit,) = named(exported, "admit")
    assert admit.status.status_code is StatusCode.ERROR
    assert admit.parent is not None and hex_id(admit.parent.span_id, 16) == runs.admission_span_id("uid-run")
    assert not named(exported, "start attempt")
