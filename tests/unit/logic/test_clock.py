"""The one clock: moments parsed and written the way the API stores them, clocks fixed on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus.logic.clock import format_time, parse_time, system_clock


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T04:00:00Z", datetime(2026, 11, 22, 4, 0, tzinfo=UTC)),
        ("2026-11-22T04:00:00+00:00", datetime(2026, 11, 22, 4, 0, tzinfo=UTC)),
        # An offset is converted, so a period boundary is judged in UTC: 23:30 at -05:00 is the next day.
        ("2026-11-30T23:30:00-05:00", datetime(2026, 12, 1, 4, 30, tzinfo=UTC)),
        ("2028-02-29T23:59:59Z", datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)),
        (" 2026-11-22T04:00:00.5Z ", datetime(2026, 11, 22, 4, 0, 0, 500_000, tzinfo=UTC)),
    ],
)
def test_parse_time_gives_utc(text: str, expected: datetime) -> None:
    moment = parse_time(text)
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-22T04:00:00", "has no timezone offset"),
        ("2026-11-22", "has no timezone offset"),
        ("2027-02-29T00:00:00Z", "is not an RFC 3339 timestamp"),  # not a leap year
        ("next tuesday", "is not an RFC 3339 timestamp"),
        ("", "is not an RFC 3339 timestamp"),
        ("2026-11-22T04:00:00Z\n2026", "is not an RFC 3339 timestamp"),
    ],
)
def test_parse_time_refuses_what_is_not_a_moment(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))]),
    )
)
def test_format_then_parse_keeps_the_second(moment: datetime) -> None:
    assert parse_time(format_time(moment)) == moment.astimezone(UTC).replace(microsecond=0)


def test_system_clock_is_aware_and_moves_forward() -> None:
    first = system_clock()
    second = system_clock()
    assert first.utcoffset() == timedelta(0)
    assert second >= first
