"""Time, in one place: the clock every decision takes as a parameter, and how moments are written.

Nothing in Jesus reads the machine's date except through `system_clock`, the default wherever a clock
or a moment is taken. Tests and `jesus plan --now` pass a moment of their own, so a decision that
depends on the date (budget periods, month ends, expiry) is judged as of that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A source of "now", timezone-aware."""


def system_clock() -> datetime:
    """The machine's clock, in UTC: the default wherever a Clock is taken."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp with an offset ("2026-11-22T04:00:00Z"), in UTC.

    Raises ValueError for text that is not such a timestamp, including one without an offset: a
    moment whose timezone is guessed would move budget periods by hours.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp such as 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone offset: end it with Z or an offset such as +02:00")
    return moment.astimezone(UTC)
