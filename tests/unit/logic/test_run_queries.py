"""The read API's parameter checks and cursors, pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus.logic.run_queries import (
    MAX_LIMIT,
    CursorSigner,
    GroupBy,
    QueryError,
    RunFilter,
    TimeRange,
    parse_group_by,
    parse_limit,
    parse_run_filter,
    parse_time_range,
)

SIGNER = CursorSigner(b"s" * 32)


def test_times_are_normalised_to_utc_seconds() -> None:
    assert parse_time_range("2026-11-30T12:00:00+02:00", None) == TimeRange("2026-11-30T10:00:00Z", None)
    assert parse_time_range("", "") == TimeRange()


@pytest.mark.parametrize(
    ("start", "end", "parameter"),
    [
        ("nope", None, "from"),
        (None, "2026-11-30", "to"),
        ("2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z", "from"),
    ],
)
def test_bad_ranges_name_their_parameter(start: str | None, end: str | None, parameter: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_time_range(start, end)
    assert caught.value.parameter == parameter


def test_limits() -> None:
    assert parse_limit(None) == 50
    assert parse_limit("500") == MAX_LIMIT
    for bad in ("0", "501", "1e3", " 5", "9" * 5000):
        with pytest.raises(QueryError, match=r"^limit: "):
            parse_limit(bad)


def test_group_by() -> None:
    assert parse_group_by("adapter") is GroupBy.ADAPTER
    with pytest.raises(QueryError, match="groupBy: 'Team' is not one of team, user, model, adapter"):
        parse_group_by("Team")


def test_a_cursor_reads_back_only_for_its_own_question_and_key() -> None:
    question = parse_run_filter(team="ml")
    cursor = SIGNER.make("runs", question, ["2026-11-30T10:00:00Z", "uid-1"])
    assert SIGNER.read("runs", question, cursor) == ["2026-11-30T10:00:00Z", "uid-1"]
    assert SIGNER.read("runs", question, None) is None
    with pytest.raises(QueryError, match="other filters"):
        SIGNER.read("runs", RunFilter(team="other"), cursor)
    with pytest.raises(QueryError, match="signature does not match"):
        CursorSigner(b"t" * 32).read("runs", question, cursor)
    with pytest.raises(QueryError, match="another list"):
        SIGNER.read("audit", question, cursor)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CursorSigner(b"short")


@given(st.text(max_size=300))
def test_no_text_is_taken_for_a_cursor(text: str) -> None:
    with pytest.raises(QueryError) as caught:
        SIGNER.read("runs", RunFilter(), text or "x")
    assert caught.value.parameter == "cursor"


@given(
    st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=3), st.integers(0, 200), st.integers(0, 7)
)
def test_a_flipped_character_breaks_the_cursor(position: list[str | None], where: int, bit: int) -> None:
    cursor = SIGNER.make("runs", RunFilter(), position)
    index = where % len(cursor)
    flipped = cursor[:index] + chr(ord(cursor[index]) ^ (1 << bit) or 65) + cursor[index + 1 :]
    if flipped == cursor:
        return
    try:
        read = SIGNER.read("runs", RunFilter(), flipped)
    except QueryError as exc:
        refused: str | None = exc.parameter
    else:
        refused = None
        assert read == position  # the flip touched base64's unused padding bits only
    assert refused in (None, "cursor")
