"""The hot answers' JSON, written without models (jesus.readapi.bodies), is byte for byte what the
response models write, for careless and hostile column values; and which reads SQLite runs on the event
loop instead of a thread."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from jesus.api.common import format_micros
from jesus.logic.records import canonical_json
from jesus.logic.run_queries import TimeRange
from jesus.readapi.bodies import cost_report_body, run_detail_body, run_list_body
from jesus.readapi.models import CostGroup, CostReport, Run, RunDetail, RunList
from jesus.records.reader import CostLine, RunSummary, quick_cost_sum

HOSTILE = [
    'quote " and \\ backslash',
    "new\nline\ttab\x00nul\x1f\x7f",
    "t\u00e9am \u2028 \U0001f600",
    "</script>",
]


def summary(text: str, **changes: Any) -> RunSummary:
    values: dict[str, Any] = {}
    for index, field in enumerate(dataclasses.fields(RunSummary)):
        values[field.name] = f"{text}{index}" if "str" in str(field.type) else index * 1_000_003
    return RunSummary(**{**values, **changes})


def validated_run(run: RunSummary) -> dict[str, Any]:
    return {**dataclasses.asdict(run), "cost": format_micros(run.cost_micros)}


@pytest.mark.parametrize("text", ["", *HOSTILE])
def test_a_page_of_runs_is_the_models_json(text: str) -> None:
    runs = [summary(text), summary(text, created=None, start_time=None, completion_time=None, trace_id=None)]
    for cursor in (None, f"cursor{text}"):
        model = RunList.model_validate({"items": [validated_run(r) for r in runs], "next_cursor": cursor})
        assert run_list_body(runs, cursor) == model.model_dump_json(by_alias=True).encode()
    empty = RunList(items=[], next_cursor=None)
    assert run_list_body([], None) == empty.model_dump_json(by_alias=True).encode()


@pytest.mark.parametrize("text", ["", *HOSTILE])
def test_a_run_with_its_archived_record_is_the_models_json(text: str) -> None:
    run = summary(text, cost_micros=-4500)
    record = {
        "metadata": {"name": text, "annotations": {text: text}},
        "spec": {"owner": {"team": "t\u00e9am"}, "prompt": text * 3, "nothing": None, "flag": True},
        "status": {"calls": [{"costMicros": 7, "usage": {"inputTokens": 2**40}}], "empty": {}, "list": []},
    }
    stored = canonical_json(record)  # what the archive's record column holds
    model = RunDetail.model_validate({**validated_run(run), "record": json.loads(stored)})
    body = run_detail_body(run, stored)
    assert body == model.model_dump_json(by_alias=True).encode()
    assert json.loads(body)["record"] == record


@pytest.mark.parametrize("text", ["", *HOSTILE])
def test_a_cost_report_is_the_models_json(text: str) -> None:
    lines = [CostLine(f"m{text}", 3, 5, 10, 20, 4_500_000_123), CostLine(text, 1, None, 0, 0, 0)]
    for start, end in ((None, None), ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")):
        model = CostReport.model_validate(
            {
                "group_by": "model",
                "from": start,
                "to": end,
                "groups": [{**dataclasses.asdict(x), "cost": format_micros(x.cost_micros)} for x in lines],
                "total_micros": 4_500_000_123,
            }
        )
        assert cost_report_body("model", start, end, lines) == model.model_dump_json(by_alias=True).encode()
    empty = CostReport(group_by="team", from_=None, to=None, groups=[], total_micros=0)
    assert cost_report_body("team", None, None, []) == empty.model_dump_json(by_alias=True).encode()


def test_the_bodies_write_every_field_the_models_have() -> None:
    # A field added to a model and not to the body would be missing from the API's answers.
    run = json.loads(run_list_body([summary("x")], None))["items"][0]
    assert set(run) == {f.alias or n for n, f in Run.model_fields.items()}
    report = json.loads(cost_report_body("user", None, None, [CostLine("k", 1, None, 1, 1, 1)]))
    assert set(report) == {f.alias or n for n, f in CostReport.model_fields.items()}
    assert set(report["groups"][0]) == {f.alias or n for n, f in CostGroup.model_fields.items()}


@pytest.mark.parametrize(
    ("window", "namespaces", "quick"),
    [
        (TimeRange("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"), ["team-a"], True),
        (TimeRange("2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z"), ["team-a"], True),
        (TimeRange("2026-11-01T00:00:00Z", "2026-11-09T00:00:01Z"), ["team-a"], False),
        (TimeRange("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"), ["team-a"], False),
        (TimeRange("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"), ["team-a", "team-b"], False),
        (TimeRange("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"), None, False),
        (TimeRange("2026-11-01T00:00:00Z", None), ["team-a"], False),
        (TimeRange(None, "2026-11-08T00:00:00Z"), ["team-a"], False),
    ],
)
def test_only_a_short_sum_of_one_namespace_is_a_quick_read(
    window: TimeRange, namespaces: list[str] | None, quick: bool
) -> None:
    assert quick_cost_sum(window, namespaces) is quick
