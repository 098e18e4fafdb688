"""The read API's questions, checked: filters, time ranges, page sizes and cursors (docs/api.md).

Everything a caller puts in a query string passes through here before it reaches SQL, and a value that
cannot be right is refused with `QueryError`, which names the parameter. Cursors are signed (HMAC-SHA256
with the server's key) and bound to the question they page through, so a cursor edited by hand, made up,
or carried over to other filters is refused instead of being trusted.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from jesus.api.agentrun import AgentRunPhase
from jesus.logic.clock import format_time, parse_time
from jesus.logic.records import DecisionAction

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_CHARS = 1024
CURSOR_VERSION = 1
# A namespace or a team label value (DNS label); a user or model name: printable, no control characters.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
# A part of a run's name (a DNS subdomain name's characters), searched for anywhere in the name.
_NAME_PART = re.compile(r"[-a-z0-9.]{1,253}")
_AUDIT_ACTIONS = frozenset(action.value for action in DecisionAction)


class QueryError(ValueError):
    """A query parameter that cannot be answered; `parameter` names it, the message says why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class GroupBy(enum.StrEnum):
    """What `/v1/costs` sums by."""

    TEAM = "team"
    USER = "user"
    MODEL = "model"
    ADAPTER = "adapter"


@dataclass(frozen=True)
class TimeRange:
    """Completion times from `start` (inclusive) to `end` (exclusive), RFC 3339 UTC; None is open."""

    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class RunFilter:
    """Which archived runs a list asks for; None matches any."""

    namespace: str | None = None
    team: str | None = None
    user: str | None = None
    phase: str | None = None
    model: str | None = None
    window: TimeRange = TimeRange()
    search: str | None = None
    """A part of the run's name (the dashboard's search box)."""


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows a list asks for; None matches any."""

    namespace: str | None = None
    run_uid: str | None = None
    action: str | None = None


def _checked(parameter: str, value: str | None, pattern: re.Pattern[str], what: str) -> str | None:
    if value is None or value == "":
        return None
    if not pattern.fullmatch(value):
        raise QueryError(parameter, f"{value[:80]!r} is not {what}")
    return value


def parse_time_range(start: str | None, end: str | None) -> TimeRange:
    """`from` and `to` as RFC 3339 UTC, with `from` before `to`."""
    bounds: dict[str, str | None] = {}
    for parameter, value in (("from", start), ("to", end)):
        if value is None or value == "":
            bounds[parameter] = None
            continue
        try:
            bounds[parameter] = format_time(parse_time(value[:64]))
        except (ValueError, OverflowError) as exc:
            raise QueryError(parameter, str(exc)) from None
    low, high = bounds["from"], bounds["to"]
    if low is not None and high is not None and low >= high:
        raise QueryError("from", f"{low} is not before to={high}")
    return TimeRange(low, high)


def parse_run_filter(
    *,
    namespace: str | None = None,
    team: str | None = None,
    user: str | None = None,
    phase: str | None = None,
    model: str | None = None,
    start: str | None = None,
    end: str | None = None,
    search: str | None = None,
) -> RunFilter:
    """The filters of a run list, each checked for what it can be (`search`: a part of the name, any
    case, as names are lower case)."""
    if phase:
        finished = [p.value for p in AgentRunPhase if p.terminal]
        if phase not in finished:
            raise QueryError(
                "phase", f"{phase[:40]!r} is not a phase of an archived run (one of {', '.join(finished)})"
            )
    return RunFilter(
        namespace=_checked("namespace", namespace, _DNS_LABEL, "a namespace name"),
        team=_checked("team", team, _LABEL_VALUE, "a team name (a label value)"),
        user=_checked("user", user, _PRINTABLE, "a user name (1 to 256 printable characters)"),
        phase=phase or None,
        model=_checked("model", model, _PRINTABLE, "a model name (1 to 256 printable characters)"),
        window=parse_time_range(start, end),
        search=_checked(
            "search",
            (search or "").strip().lower()[:300],
            _NAME_PART,
            "a part of a run name (a-z, 0-9, '-', '.')",
        ),
    )


def parse_audit_filter(
    *, namespace: str | None = None, run_uid: str | None = None, action: str | None = None
) -> AuditFilter:
    """The filters of an audit list."""
    if action and action not in _AUDIT_ACTIONS:
        raise QueryError("action", f"{action[:40]!r} is not one of {', '.join(sorted(_AUDIT_ACTIONS))}")
    return AuditFilter(
        namespace=_checked("namespace", namespace, _DNS_LABEL, "a namespace name"),
        run_uid=_checked("uid", run_uid, _PRINTABLE, "a run UID"),
        action=action or None,
    )


def parse_group_by(value: str | None) -> GroupBy:
    """`groupBy`: one of team, user, model, adapter."""
    if not value:
        raise QueryError("groupBy", f"is required: one of {', '.join(g.value for g in GroupBy)}")
    try:
        return GroupBy(value)
    except ValueError:
        raise QueryError(
            "groupBy", f"{value[:40]!r} is not one of {', '.join(g.value for g in GroupBy)}"
        ) from None


def parse_limit(value: str | int | None) -> int:
    """`limit`: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent. Larger is refused, not quietly cut: a
    client that asked for everything should learn that it gets pages."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    text = str(value)
    if not text.isdigit():
        raise QueryError("limit", f"{text[:20]!r} is not a whole number from 1 to {MAX_LIMIT}")
    limit = int(text[:7])  # more digits than that is too many either way
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"{limit} is not from 1 to {MAX_LIMIT}")
    return limit


def question_digest(kind: str, question: Any) -> str:
    """What a cursor is bound to: the kind of list and its filters (a dataclass or plain JSON)."""
    document = asdict(question) if hasattr(question, "__dataclass_fields__") else question
    text = json.dumps([kind, document], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Makes and reads the opaque `cursor` of a list: the last position served, the question it
    belongs to, and an HMAC over both with the server's key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the cursor key must be at least 16 bytes")
        self._key = key

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:18])

    def make(self, kind: str, question: Any, position: list[Any]) -> str:
        """The cursor after `position` (the sort key of the last item served) in this question."""
        payload = json.dumps(
            {"v": CURSOR_VERSION, "k": kind, "q": question_digest(kind, question), "p": position},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    def read(self, kind: str, question: Any, cursor: str | None) -> list[Any] | None:
        """The position in `cursor`, None for the first page; QueryError("cursor") when it was not made
        by this server for this question."""
        if cursor is None or cursor == "":
            return None
        if len(cursor) > MAX_CURSOR_CHARS:
            raise QueryError("cursor", f"is longer than {MAX_CURSOR_CHARS} characters: not one of ours")
        body, _, mac = cursor.partition(".")
        try:
            payload = _unb64(body)
        except (binascii.Error, ValueError):
            raise QueryError("cursor", "is not a cursor this API returned (not base64url)") from None
        if not mac or not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(payload).encode()):
            raise QueryError("cursor", "its signature does not match: pass back the cursor unchanged")
        try:
            document = json.loads(payload)
        except ValueError:
            raise QueryError("cursor", "is not a cursor this API returned") from None
        if document.get("v") != CURSOR_VERSION or document.get("k") != kind:
            raise QueryError("cursor", f"belongs to another list than {kind}")
        if document.get("q") != question_digest(kind, question):
            raise QueryError("cursor", "was made for other filters: repeat the filters of its first page")
        position = document.get("p")
        if not isinstance(position, list):
            raise QueryError("cursor", "holds no position")
        return position
