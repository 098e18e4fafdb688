"""What the dashboard's pages show, as plain data: a run's timeline, the cost chart, the budget rows.

Nothing here renders HTML (the templates do, with Jinja's autoescape) or touches HTTP: the geometry of
the inline SVG charts is computed here, so it is tested without a browser. Every value from a run's
record or a Budget may be missing or of the wrong type (a record is what a pod and a user wrote, a
Budget what a namespace admin wrote): each reader below tolerates that and shows a dash instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from jesus.api.common import MoneyError, format_micros, parse_money
from jesus.logic.clock import parse_time
from jesus.records.reader import CostPoint

CHART_WIDTH = 720
CHART_HEIGHT = 240
CHART_LEFT = 64
"""Room for the y axis's labels."""
CHART_BOTTOM = 24
"""Room for the x axis's labels."""
TIMELINE_WIDTH = 600
MAX_SERIES = 6
"""Groups drawn; the rest are counted and summed in the legend."""
TRACE_ID = re.compile(r"[0-9a-f]{32}")
MESSAGE_LIMIT = 2000
"""A message (a model's output excerpt, a pod's last words) is cut here; the JSON record has it whole."""


def text(value: Any, limit: int = 4096) -> str:
    """`value` as text for a page, cut to `limit` characters (a marked cut); '' for None."""
    if value is None:
        return ""
    shown = value if isinstance(value, str) else str(value)
    return shown if len(shown) <= limit else shown[:limit] + f"… ({len(shown) - limit} more characters)"


def whole(value: Any) -> int | None:
    """`value` if it is a whole number (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def money(micros: Any) -> str:
    """Micro-units as money text, or '-'."""
    amount = whole(micros)
    return "-" if amount is None else format_micros(amount)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value[:64])
    except (ValueError, OverflowError):
        return None


# --- a run's page -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """A horizontal bar of a timeline: where it starts and how wide it is, in SVG units."""

    x: float
    width: float


@dataclass(frozen=True)
class AttemptView:
    number: str
    job: str
    outcome: str
    started: str
    completed: str
    message: str
    bar: Bar | None


@dataclass(frozen=True)
class FallbackView:
    adapter: str
    error_class: str


@dataclass(frozen=True)
class CallView:
    index: int
    adapter: str
    model: str
    input_tokens: str
    output_tokens: str
    cost: str
    duration: str
    fallbacks: list[FallbackView]
    bar: Bar | None


@dataclass(frozen=True)
class ArtifactView:
    name: str
    href: str
    size: str
    digest: str
    uri: str


@dataclass(frozen=True)
class HoldView:
    budget: str
    held: str
    settled: str


@dataclass(frozen=True)
class RunView:
    """Everything a run's page shows beyond its columns."""

    message: str
    allowed: str
    reasons: list[str]
    warnings: list[str]
    holds: list[HoldView]
    max_cost: str
    attempts: list[AttemptView]
    calls: list[CallView]
    fallback_count: int
    artifacts: list[ArtifactView]
    conditions: list[dict[str, str]]
    trace_url: str | None
    timeline_seconds: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _texts(value: Any) -> list[str]:
    return [text(v, 1024) for v in value] if isinstance(value, list) else []


def trace_link(template: str | None, trace_id: Any) -> str | None:
    """The trace's URL from the configured template (`{traceId}` replaced), or None without either
    (a trace id that is not 32 hex digits is not put in a URL)."""
    if not template or not isinstance(trace_id, str) or not TRACE_ID.fullmatch(trace_id):
        return None
    return template.replace("{traceId}", trace_id)


def run_view(record: Any, *, namespace: str, name: str, uid: str, trace_template: str | None) -> RunView:
    """The page's view of an archived run's record (whatever shape it has)."""
    status, spec = _dict(_dict(record).get("status")), _dict(_dict(record).get("spec"))
    policy = _dict(status.get("policy"))
    limits = _dict(spec.get("limits"))

    attempts = _dicts(status.get("attempts"))
    spans = [(_moment(a.get("startTime")), _moment(a.get("completionTime"))) for a in attempts]
    starts = [s for s, _ in spans if s is not None]
    ends = [e for _, e in spans if e is not None] + starts
    origin = min(starts) if starts else None
    total = (max(ends) - origin).total_seconds() if origin is not None and ends else 0.0

    def attempt_bar(start: datetime | None, end: datetime | None) -> Bar | None:
        if origin is None or start is None:
            return None
        scale = TIMELINE_WIDTH / total if total > 0 else 0.0
        x = (start - origin).total_seconds() * scale
        width = ((end or start) - start).total_seconds() * scale
        return Bar(round(x, 1), round(max(width, 2.0), 1))

    calls = _dicts(status.get("calls"))
    durations = [whole(c.get("durationMilliseconds")) for c in calls]
    longest = max((d for d in durations if d is not None), default=0)
    call_views = []
    for index, (call, duration) in enumerate(zip(calls, durations, strict=True)):
        usage = _dict(call.get("usage"))
        call_views.append(
            CallView(
                index=index,
                adapter=text(call.get("adapter"), 253),
                model=text(call.get("model"), 256),
                input_tokens=text(whole(usage.get("inputTokens"))) or "-",
                output_tokens=text(whole(usage.get("outputTokens"))) or "-",
                cost=money(call.get("costMicros")),
                duration="-" if duration is None else f"{duration} ms",
                fallbacks=[
                    FallbackView(text(f.get("adapter"), 253), text(f.get("errorClass"), 64))
                    for f in _dicts(call.get("fallbacks"))
                ],
                bar=None
                if duration is None or longest <= 0
                else Bar(0.0, round(max(TIMELINE_WIDTH * duration / longest, 2.0), 1)),
            )
        )
    artifacts = []
    for artifact in _dicts(status.get("artifacts")):
        artifact_name = text(artifact.get("name"), 253)
        size = whole(artifact.get("sizeBytes"))
        artifacts.append(
            ArtifactView(
                name=artifact_name,
                href=download_href(namespace, name, uid, artifact_name),
                size="-" if size is None else f"{size:,} B",
                digest=text(artifact.get("digest"), 80),
                uri=text(artifact.get("uri"), 2048),
            )
        )
    holds = [
        HoldView(
            budget=f"{text(h.get('namespace'), 63)}/{text(h.get('budget'), 253)}",
            held=money(h.get("amountMicros")),
            settled="yes" if h.get("settled") is True else "no",
        )
        for h in _dicts(status.get("budgetReservations"))
    ]
    allowed = policy.get("allowed")
    return RunView(
        message=text(status.get("message"), MESSAGE_LIMIT),
        allowed="-" if not isinstance(allowed, bool) else ("allowed" if allowed else "denied"),
        reasons=_texts(policy.get("reasons")),
        warnings=_texts(policy.get("warnings")),
        holds=holds,
        max_cost=text(limits.get("maxCost"), 40) or "-",
        attempts=[
            AttemptView(
                number=text(a.get("number"), 8),
                job=text(a.get("jobName"), 63),
                outcome=text(a.get("outcome"), 40),
                started=text(a.get("startTime"), 64) or "-",
                completed=text(a.get("completionTime"), 64) or "-",
                message=text(a.get("message"), MESSAGE_LIMIT),
                bar=attempt_bar(*span),
            )
            for a, span in zip(attempts, spans, strict=True)
        ],
        calls=call_views,
        fallback_count=sum(len(c.fallbacks) for c in call_views),
        artifacts=artifacts,
        conditions=[
            {
                key: text(c.get(key), 1024)
                for key in ("type", "status", "reason", "message", "lastTransitionTime")
            }
            for c in _dicts(status.get("conditions"))
        ],
        trace_url=trace_link(trace_template, status.get("traceId")),
        timeline_seconds=f"{total:g}",
    )


def download_href(namespace: str, name: str, uid: str, artifact: str) -> str:
    """The read API's download URL of one artifact of one run, every segment escaped."""
    segments = "/".join(quote(part, safe="") for part in (namespace, name))
    return f"/v1/runs/{segments}/artifacts/{quote(artifact, safe='')}?uid={quote(uid, safe='')}"


# --- the costs page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Series:
    key: str
    total: str
    points: str
    """An SVG polyline's `points`."""
    colour: int
    """Its CSS class's number (series-0 … series-5)."""


@dataclass(frozen=True)
class LimitLine:
    label: str
    y: float


@dataclass
class CostChart:
    """A line chart of daily spend per group, with the Daily budget limits that apply to the groups."""

    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = CHART_LEFT
    bottom: float = CHART_HEIGHT - CHART_BOTTOM
    series: list[Series] = field(default_factory=list)
    limits: list[LimitLine] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    days: int = 0
    empty: bool = True
    rest: int = 0
    """Groups not drawn (past the MAX_SERIES largest)."""
    rest_total: str = "0"


def days_of(first: date, count: int) -> list[str]:
    """`count` days from `first`, as YYYY-MM-DD."""
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


def tick_step(least: float) -> int:
    """The round step (1, 2, 2.5 or 5 times a power of ten micro-units, at least 1) not below `least`."""
    power = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            if factor * power >= least:
                return max(1, int(factor * power))
        power *= 10


def cost_chart(
    points: Sequence[CostPoint], days: Sequence[str], limits: Sequence[tuple[str, int]]
) -> CostChart:
    """The chart of `points` over `days` (the window's days, in order), with `limits` ((label, daily
    limit in micro-units) of the budgets that apply to a group drawn) as dashed lines."""
    chart = CostChart(days=len(days))
    if not days:
        return chart
    index = {day: i for i, day in enumerate(days)}
    totals: dict[str, int] = {}
    for point in points:
        if point.day in index:
            totals[point.key] = totals.get(point.key, 0) + point.cost_micros
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    shown = ranked[:MAX_SERIES]
    # The rest are counted, not drawn: summed into one line they would dwarf the groups drawn.
    chart.rest = len(ranked) - len(shown)
    chart.rest_total = format_micros(sum(totals[k] for k in ranked[MAX_SERIES:]))
    daily = {key: [0] * len(days) for key in shown}
    for point in points:
        if point.day in index and point.key in daily:
            daily[point.key][index[point.day]] += point.cost_micros
    spent = max([max(values) for values in daily.values()] + [0])
    # A limit far above the spend would flatten every line: the scale takes limits up to 3 times it.
    near = [amount for _, amount in limits if spent == 0 or amount <= 3 * spent]
    peak = max([spent, *near])
    chart.empty = not totals
    step = tick_step(peak * 1.1 / 4) if peak > 0 else 250_000
    top = step * 4
    plot_width = CHART_WIDTH - CHART_LEFT - 8
    plot_height = chart.bottom - 8

    def x(i: int) -> float:
        return round(CHART_LEFT + (plot_width * i / (len(days) - 1) if len(days) > 1 else plot_width / 2), 1)

    def y(micros: int) -> float:
        return round(chart.bottom - plot_height * micros / top, 1)

    for colour, key in enumerate(shown):
        values = daily[key]
        chart.series.append(
            Series(
                key=text(key, 256),
                total=format_micros(sum(values)),
                points=" ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values)),
                colour=colour,
            )
        )
    chart.limits = [LimitLine(text(label, 300), y(amount)) for label, amount in limits if amount <= top]
    every = max(1, len(days) // 6)
    chart.x_ticks = [Tick(x(i), days[i][5:]) for i in range(0, len(days), every)]
    chart.y_ticks = [Tick(y(step * i), format_micros(step * i)) for i in range(5)]
    return chart


@dataclass(frozen=True)
class BudgetView:
    namespace: str
    name: str
    scope: str
    period: str
    limit: str
    spent: str
    reserved: str
    percent: str
    bar: float
    """The spent-and-reserved share of the limit, 0 to 100 (drawn capped)."""
    over: bool


def _limit_micros(spec: dict[str, Any]) -> int | None:
    limit = spec.get("limit")
    if not isinstance(limit, str):
        return None
    try:
        return parse_money(limit[:40])
    except MoneyError:
        return None


def budget_views(budgets: Sequence[Any]) -> list[BudgetView]:
    """A row per Budget (items of the read API's budget list) with its use of the limit."""
    rows = []
    for budget in budgets:
        spec, status = _dict(budget.spec), _dict(budget.status)
        scope = _dict(spec.get("scope"))
        limit = _limit_micros(spec)
        spent, reserved = whole(status.get("spentMicros")) or 0, whole(status.get("reservedMicros")) or 0
        share = (spent + reserved) * 100 / limit if limit else 0.0
        rows.append(
            BudgetView(
                namespace=text(budget.namespace, 63),
                name=text(budget.name, 253),
                scope=", ".join(f"{k}={text(v, 253)}" for k, v in sorted(scope.items()) if isinstance(v, str))
                or "-",
                period=text(spec.get("period"), 20) or "-",
                limit=text(spec.get("limit"), 40) or "-",
                spent=format_micros(spent),
                reserved=format_micros(reserved),
                percent=f"{share:.0f}%" if limit else "-",
                bar=round(min(share, 100.0), 1),
                over=share >= 100,
            )
        )
    return rows


def daily_limits(budgets: Sequence[Any], group_by: str, keys: Sequence[str]) -> list[tuple[str, int]]:
    """(label, limit) of each Daily Budget scoped to one of the charted `keys` (a team or a user)."""
    field_name = {"team": "team", "user": "user"}.get(group_by)
    if field_name is None:
        return []
    found = []
    for budget in budgets:
        spec = _dict(budget.spec)
        scope = _dict(spec.get("scope"))
        limit = _limit_micros(spec)
        if spec.get("period") == "Daily" and limit is not None and scope.get(field_name) in keys:
            found.append((f"{budget.namespace}/{budget.name}: {format_micros(limit)} a day", limit))
    return found
