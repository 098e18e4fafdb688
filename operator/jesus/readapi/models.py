"""The read API's responses, as pydantic models: FastAPI validates what it returns against them and
publishes them in `/openapi.json` (a copy lives in docs/openapi/read-api.json)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from jesus.api.common import format_micros
from jesus.records.reader import AuditEntry, CallSummary, CostLine, RunSummary


class Body(BaseModel):
    """camelCase on the wire, as the Kubernetes objects the runs came from."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ErrorDetail(Body):
    code: str = Field(description="BadParameter, Unauthenticated, NotFound or Unavailable")
    message: str
    parameter: str | None = Field(None, description="the query or path parameter at fault, if one is")


class ErrorBody(Body):
    error: ErrorDetail


class Run(Body):
    """An archived run's columns."""

    uid: str
    namespace: str
    name: str
    phase: str
    team: str
    user: str
    created: str | None
    start_time: str | None
    completion_time: str | None
    spec_digest: str
    trace_id: str | None
    cost_micros: int
    cost: str = Field(description="cost_micros in units, as text (e.g. 0.0045)")
    input_tokens: int
    output_tokens: int
    attempts: int
    archived_at: str

    @classmethod
    def of(cls, run: RunSummary) -> Run:
        # Columns the archive's schema typed, field for field: constructed without validating them
        # again (`dataclasses.asdict` and validation were a third of a list's time, bench_read_api).
        values = {name: getattr(run, name) for name in _RUN_FIELDS}
        return cls.model_construct(**values, cost=format_micros(run.cost_micros))


_RUN_FIELDS = tuple(field.name for field in dataclasses.fields(RunSummary))


class RunList(Body):
    items: list[Run]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class RunDetail(Run):
    record: dict[str, Any] = Field(
        description="the whole archived record: metadata, spec, and status as the operator left it"
    )

    @classmethod
    def with_record(cls, run: RunSummary, record: dict[str, Any]) -> RunDetail:
        """`run`'s columns and its record (the JSON object the archive holds), not validated again."""
        values = {name: getattr(run, name) for name in _RUN_FIELDS}
        return cls.model_construct(**values, cost=format_micros(run.cost_micros), record=record)


class Fallback(Body):
    adapter: str
    error_class: str


class Call(Body):
    index: int
    adapter: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    duration_milliseconds: int | None
    fallbacks: list[Fallback]

    @classmethod
    def of(cls, call: CallSummary) -> Call:
        return cls(
            index=call.index,
            adapter=call.adapter,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_micros=call.cost_micros,
            duration_milliseconds=call.duration_milliseconds,
            fallbacks=[Fallback(adapter=f["adapter"], error_class=f["errorClass"]) for f in call.fallbacks],
        )


class CallList(Body):
    namespace: str
    name: str
    uid: str
    items: list[Call]


class CostGroup(Body):
    key: str
    runs: int
    calls: int | None = Field(description="null when grouped by team or user")
    input_tokens: int
    output_tokens: int
    cost_micros: int
    cost: str

    @classmethod
    def of(cls, line: CostLine) -> CostGroup:
        # Typed sums, field for field (`dataclasses.asdict` deep-copies; a report by user has 50 lines).
        return cls.model_construct(
            key=line.key,
            runs=line.runs,
            calls=line.calls,
            input_tokens=line.input_tokens,
            output_tokens=line.output_tokens,
            cost_micros=line.cost_micros,
            cost=format_micros(line.cost_micros),
        )


class CostReport(Body):
    group_by: str
    from_: str | None = Field(alias="from")
    to: str | None
    groups: list[CostGroup]
    total_micros: int


class BudgetItem(Body):
    namespace: str
    name: str
    spec: dict[str, Any]
    status: dict[str, Any]


class BudgetList(Body):
    items: list[BudgetItem]


class AuditItem(Body):
    id: int
    recorded_at: str
    action: str
    namespace: str
    name: str
    run_uid: str
    at: str
    detail: Any
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditItem:
        return cls(
            id=entry.id,
            recorded_at=entry.recorded_at,
            action=entry.action,
            namespace=entry.namespace,
            name=entry.name,
            run_uid=entry.run_uid,
            at=entry.at,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


class AuditList(Body):
    items: list[AuditItem]
    next_cursor: str | None
