from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from flask_qhana_tasks.timeparse import format_datetime
from flask_qhana_tasks.timeparse import format_duration
from flask_qhana_tasks.timeparse import parse_datetime
from flask_qhana_tasks.timeparse import parse_duration
from flask_qhana_tasks.timeparse import parse_moment

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 1d 12h ", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", "'30' is not a duration: use a whole number and a unit"),
        ("30x", "'30x' is not a duration"),
        ("1D", "'1D' is not a duration"),
        ("-5d", "'-5d' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("", "'' is not a duration"),
        ("0d", "'0d' is zero"),
        ("0h0m", "'0h0m' is zero"),
        ("9999999999w", "'9999999999w' is too long a duration"),
        ("9" * 5000 + "s", "is too long a duration"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(text)

    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=timezone.utc)),
        ("2026-01-31T12:30", datetime(2026, 1, 31, 12, 30, tzinfo=timezone.utc)),
        ("2026-01-31 12:30:05Z", datetime(2026, 1, 31, 12, 30, 5, tzinfo=timezone.utc)),
        ("2026-01-31T12:00+01:00", datetime(2026, 1, 31, 11, tzinfo=timezone.utc)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)

    assert parsed == expected
    assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "31.01.2026", ""])
def test_parse_datetime_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=f"{text!r} is not a date-time: use an ISO"):
        parse_datetime(text)


def test_parse_moment() -> None:
    assert parse_moment("12h", now=NOW) == NOW - timedelta(hours=12)
    assert parse_moment("2026-01-31", now=NOW) == datetime(
        2026, 1, 31, tzinfo=timezone.utc
    )
    current = datetime.now(timezone.utc)
    assert current - parse_moment("1d") - timedelta(days=1) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "'soon' is neither a duration nor a date-time: use a whole number"),
        ("0s", "'0s' is zero"),
        ("999999999d", "'999999999d' reaches back before the year 1"),
    ],
)
def test_parse_moment_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_moment(text, now=NOW)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=900), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=5, seconds=20), "5m 20s"),
        (timedelta(hours=1, seconds=5), "1h"),
        (timedelta(days=3, hours=4, minutes=5), "3d 4h"),
        (timedelta(weeks=3), "21d"),
        (timedelta(seconds=-90), "-1m 30s"),
    ],
)
def test_format_duration(duration: timedelta, expected: str) -> None:
    assert format_duration(duration) == expected


def test_format_datetime() -> None:
    berlin = timezone(timedelta(hours=1))

    assert format_datetime(datetime(2026, 1, 31, 13, 0, 5, 99, berlin)) == (
        "2026-01-31 12:00:05"
    )
    assert format_datetime(datetime(2026, 1, 31, 12)) == "2026-01-31 12:00:00"
    assert format_datetime(None) == "-"
