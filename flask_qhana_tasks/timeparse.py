"""Read durations and date-times as operators type them, and write them back.

A duration is a whole number and a unit, or several of them: ``30d``, ``12h``,
``90m``, ``2w``, ``45s``, ``1d12h``. A date-time is ISO 8601, like
``2026-01-31`` or ``2026-01-31T12:00:00+01:00``; one without a zone is UTC,
like every timestamp the package stores.

The parsers raise :class:`ValueError` with a sentence that names the value and
the accepted forms, ready to be shown to the user.
"""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from .types import utcnow

#: The length of each unit a duration may use.
DURATION_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}

#: The accepted forms of a duration, as error messages and help texts name them.
DURATION_FORMS = (
    "a whole number and a unit, w (weeks), d (days), h (hours), m (minutes) or"
    " s (seconds), like '30d', '12h' or '1d12h'"
)

#: The accepted forms of a date-time, as error messages and help texts name them.
DATETIME_FORMS = (
    "an ISO 8601 date-time, like '2026-01-31' or '2026-01-31T12:00:00+01:00'"
    " (without a zone it is UTC)"
)

_DURATION = re.compile(r"(?:\d+[wdhms])+")
_DURATION_PART = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """Return the duration written in ``text``, like ``30d`` or ``1d12h``.

    Spaces between the parts are allowed (``1d 12h``).

    :param text: the duration.
    :raises ValueError: ``text`` is not a duration, is zero, or is too long.
    """
    compact = "".join(text.split())

    if _DURATION.fullmatch(compact) is None:
        raise ValueError(f"{text!r} is not a duration: use {DURATION_FORMS}.")

    try:
        total = sum(
            (
                int(count) * DURATION_UNITS[unit]
                for count, unit in _DURATION_PART.findall(compact)
            ),
            timedelta(),
        )
    except (OverflowError, ValueError):
        # ValueError: more digits than int() reads.
        raise ValueError(
            f"{text!r} is too long a duration: use at most {timedelta.max.days}d."
        ) from None

    if not total:
        raise ValueError(f"{text!r} is zero: give a duration longer than that.")

    return total


def parse_datetime(text: str) -> datetime:
    """Return the timezone-aware UTC date-time written in ISO 8601 in ``text``.

    A date-time without a zone is taken to be UTC; a date alone means its
    midnight, UTC.

    :param text: the date-time.
    :raises ValueError: ``text`` is not an ISO 8601 date-time.
    """
    value = text.strip()

    # Python 3.10 reads no "Z" suffix.
    if value[-1:] in ("Z", "z"):
        value = f"{value[:-1]}+00:00"

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date-time: use {DATETIME_FORMS}."
        ) from None

    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)

    return moment.astimezone(timezone.utc)


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """Return the point in time ``text`` names: a date-time, or a duration ago.

    ``12h`` is twelve hours before ``now``; ``2026-01-31`` is that midnight, UTC.

    :param text: a duration or an ISO 8601 date-time.
    :param now: the time durations count back from; the current time if not given.
    :raises ValueError: ``text`` is neither, or lies before the year 1.
    """
    if _DURATION.fullmatch("".join(text.split())) is None:
        try:
            return parse_datetime(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a duration nor a date-time: use"
                f" {DURATION_FORMS}, or {DATETIME_FORMS}."
            ) from None

    duration = parse_duration(text)

    try:
        return (now or utcnow()) - duration
    except OverflowError:
        raise ValueError(
            f"{text!r} reaches back before the year 1: give a shorter duration."
        ) from None


def format_duration(duration: timedelta) -> str:
    """Return ``duration`` in its two largest units, like ``3d 4h`` or ``5m 20s``.

    Fractions of a second are dropped; a negative duration gets a minus sign.

    :param duration: the duration.
    """
    seconds = int(duration.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts: list[tuple[int, str]] = []

    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(DURATION_UNITS[unit].total_seconds()))
        parts.append((count, unit))

    first = next((i for i, (count, _) in enumerate(parts) if count), len(parts) - 1)
    shown = [f"{count}{unit}" for count, unit in parts[first : first + 2] if count]
    shown = shown or ["0s"]
    return sign + " ".join(shown)


def format_datetime(moment: datetime | None) -> str:
    """Return ``moment`` in UTC to the second, like ``2026-01-31 12:00:00``.

    :param moment: the date-time, UTC if it has no zone; ``None`` gives ``"-"``.
    """
    if moment is None:
        return "-"

    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)

    return moment.strftime("%Y-%m-%d %H:%M:%S")
