"""The JSON bodies of the hot answers (a page of runs, a run, a cost report), written straight from the
reader's rows: the same bytes the response models' `model_dump_json(by_alias=True)` gives (a test holds
them equal, hostile text included), without building a model per row.

Building the models cost more than the query: a cost report by user (50 groups) spent 0.7 ms in
`model_construct` and 2.4 ms in all beyond its 0.3 ms of SQL (bench_read_api). The models still
document the routes in /openapi.json and are what `jesus mcp` and the dashboard are given.

A run's record is spliced in as the archive holds it (canonical JSON, written by the archive's writer),
not parsed and written again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from jesus.api.common import format_micros
from jesus.readapi.models import CostGroup, CostReport, Run, RunList
from jesus.records.reader import CostLine, RunSummary

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Compact, UTF-8 as written (what pydantic's JSON is)."""


def _aliases(model: type[Run] | type[CostGroup] | type[RunList] | type[CostReport]) -> dict[str, str]:
    return {name: field.alias or name for name, field in model.model_fields.items()}


_RUN = _aliases(Run)
_COST = _aliases(CostGroup)
_LIST = _aliases(RunList)
_REPORT = _aliases(CostReport)


def _getter(name: str) -> Callable[[Any], Any]:
    if name == "cost":
        return lambda row: format_micros(row.cost_micros)
    return lambda row: getattr(row, name)


# (key on the wire, value) in the models' field order, so the bytes are the models' bytes.
_RUN_FIELDS = tuple((alias, _getter(name)) for name, alias in _RUN.items())
_COST_FIELDS = tuple((alias, _getter(name)) for name, alias in _COST.items())


def run_object(run: RunSummary) -> dict[str, Any]:
    """`run`'s columns as the `Run` model writes them (camelCase, in its field order)."""
    return {key: value(run) for key, value in _RUN_FIELDS}


def run_list_body(runs: Sequence[RunSummary], next_cursor: str | None) -> bytes:
    """A page of runs: `RunList`'s JSON."""
    page = {_LIST["items"]: [run_object(run) for run in runs], _LIST["next_cursor"]: next_cursor}
    return _encode(page).encode()


def run_detail_body(run: RunSummary, record_json: str) -> bytes:
    """One run and its whole record (the archive's JSON text of an object): `RunDetail`'s JSON."""
    columns = _encode(run_object(run))
    return f'{columns[:-1]},"record":{record_json}}}'.encode()


def cost_report_body(group_by: str, start: str | None, end: str | None, lines: Sequence[CostLine]) -> bytes:
    """A cost report: `CostReport`'s JSON."""
    report = {
        _REPORT["group_by"]: group_by,
        _REPORT["from_"]: start,
        _REPORT["to"]: end,
        _REPORT["groups"]: [{key: value(line) for key, value in _COST_FIELDS} for line in lines],
        _REPORT["total_micros"]: sum(line.cost_micros for line in lines),
    }
    return _encode(report).encode()
