"""Time expressions users write in the configuration: durations, percentages and cron lines.

- :func:`parse_duration` / :func:`format_duration`: ``90d``, ``12h``, ``30m``, ``45s`` and
  combinations in that order (``1d12h``); a plain integer means seconds.
- :class:`Percentage`: a share of a key's validity (``rotate_before: "30%"``).
- :func:`cron_trigger` / :func:`validate_cron`: standard 5-field crontab expressions
  (day-of-week 0 and 7 = Sunday) as APScheduler 3 triggers, which number weekdays from
  Monday = 0 and would otherwise shift every numeric weekday by one.

Duration errors describe what is wrong without repeating the text, which might be a secret
pasted into the wrong field. Durations are bounded by :data:`MAX_DURATION` (100 years), so that
every date the rotator derives from one (now + validity, now - orphan_min_age, a timeout handed
to a thread) stays within what a ``datetime`` and a thread wait can hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

__all__ = [
    "DURATION_HINT",
    "MAX_DURATION",
    "Percentage",
    "cron_trigger",
    "format_duration",
    "parse_duration",
    "validate_cron",
]

_UNIT_SECONDS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_UNIT_ORDER: Final = tuple(_UNIT_SECONDS)
_DURATION_PART = re.compile(r"(\d+)([A-Za-z]*)")
DURATION_HINT: Final = "e.g. 90d, 12h, 30m, 45s or 1d12h; a plain number means seconds"
#: The longest duration accepted: 100 years. Dates derived from it stay far from datetime's
#: year 9999 (and a thread wait of it from threading.TIMEOUT_MAX), whatever today is.
MAX_DURATION: Final = timedelta(days=36_500)
#: More digits than MAX_DURATION has in seconds (10 digits): such a number is too large.
_MAX_DIGITS: Final = 12


def parse_duration(text: str) -> timedelta:
    """Parse ``90d``, ``12h``, ``30m``, ``45s``, ``1d12h``, ``1h30m`` or ``"3600"`` (seconds).

    Units are ``d``, ``h``, ``m``, ``s``, each at most once and in that order. Raises
    :class:`ValueError` with a message that says what is wrong (it never repeats the text, which
    might be a misplaced secret).
    """
    value = text.strip()
    if not value:
        raise ValueError(f"empty duration; expected a duration ({DURATION_HINT})")
    if value.startswith("-"):
        raise ValueError("durations cannot be negative")
    if value.isascii() and value.isdigit():
        return _seconds(_number(value))
    if re.search(r"\d[.,]\d", value):
        raise ValueError("durations take whole numbers: write 90m rather than 1.5h")
    total = 0
    last_unit = -1
    position = 0
    while position < len(value):
        match = _DURATION_PART.match(value, position)
        if match is None:
            raise ValueError(f"not a duration ({DURATION_HINT})")
        number, unit = match.groups()
        if not unit:
            raise ValueError(f"every number in a combined duration needs a unit ({DURATION_HINT})")
        if unit not in _UNIT_SECONDS:
            raise ValueError(f"unknown duration unit {unit[:8]!r}; use d, h, m or s")
        index = _UNIT_ORDER.index(unit)
        if index <= last_unit:
            raise ValueError(
                "duration units must appear at most once each, in the order d, h, m, s"
            )
        last_unit = index
        total += _number(number) * _UNIT_SECONDS[unit]
        position = match.end()
    return _seconds(total)


def _number(digits: str) -> int:
    """The value of a run of digits; a run longer than any sane duration is refused unread
    (int() of thousands of digits is slow, then refused by Python with a message of its own)."""
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"duration is too large: at most {format_duration(MAX_DURATION)}")
    return int(digits)


def _seconds(total: int) -> timedelta:
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"duration is too large: at most {format_duration(MAX_DURATION)}")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Render a duration the way users write it: ``1d12h``, ``30m``, ``0s``.

    Fractions of a second are rounded to the nearest second; negative durations are refused.
    """
    total = round(value.total_seconds())
    if total < 0:
        raise ValueError("cannot format a negative duration")
    if total == 0:
        return "0s"
    parts = []
    for unit, seconds in _UNIT_SECONDS.items():
        count, total = divmod(total, seconds)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@dataclass(frozen=True)
class Percentage:
    """A share of a key's validity, as in ``rotate_before: "30%"``."""

    percent: float

    def of(self, whole: timedelta) -> timedelta:
        """This share of ``whole``, rounded to whole seconds."""
        return timedelta(seconds=round(whole.total_seconds() * self.percent / 100))

    def __str__(self) -> str:
        return f"{self.percent:g}%"


_WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_PART = re.compile(r"^(?:(\*)|([0-7]|[a-z]{3})(?:-([0-7]|[a-z]{3}))?)(?:/(\d+))?$")


def _weekday_number(token: str) -> int:
    if token.isdigit():
        return int(token) % 7  # 7 is Sunday, as in crontab(5)
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    raise ValueError(f"unknown day of week {token!r}; use 0-7 or sun..sat")


def _day_of_week_field(field: str) -> str:
    """Translate a crontab day-of-week field (0/7 = Sunday) into APScheduler's weekday names.

    APScheduler 3 numbers weekdays from Monday = 0, so ``1-5`` handed to it unchanged would
    mean Tuesday-Saturday; naming every day explicitly removes the ambiguity.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _DOW_PART.match(part)
        if match is None:
            raise ValueError(
                "use *, a day (0-7 or sun..sat), a range (1-5) or a list, optionally with a /step"
            )
        star, first, last, step = match.groups()
        if star:
            start, stop = 0, 6
        else:
            start = _weekday_number(first)
            stop = _weekday_number(last) if last else (6 if step else start)
            if last and last.isdigit() and int(last) == 7:
                stop = 7  # "5-7" is Friday through Sunday
        if stop < start:
            raise ValueError("a range must go from an earlier to a later day (0/sun first)")
        stride = int(step) if step else 1
        if stride < 1:
            raise ValueError("a cron step must be at least 1")
        days.update(day % 7 for day in range(start, stop + 1, stride))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: tzinfo = UTC) -> CronTrigger:
    """The APScheduler trigger of a standard 5-field crontab expression (day-of-week 0/7 = Sunday).

    Use this instead of ``CronTrigger.from_crontab``, which in APScheduler 3 reads day-of-week
    numbers from Monday = 0. Raises :class:`ValueError` naming the bad field. APScheduler is
    imported here, on first use: a command without a cron expression never loads it.
    """
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415 - imported late

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month day-of-week), "
            f"this one has {len(fields)}"
        )
    minute, hour, day, month, day_of_week = fields
    if day not in ("*", "?") and day_of_week not in ("*", "?"):
        # crontab(5) ORs the two fields while APScheduler ANDs them: refuse the ambiguity.
        raise ValueError(
            "restrict either day-of-month or day-of-week, not both (cron and APScheduler "
            "disagree on how to combine them)"
        )
    day = "*" if day == "?" else day
    day_of_week = "*" if day_of_week == "?" else day_of_week
    try:
        weekdays = _day_of_week_field(day_of_week)
    except ValueError as exc:
        raise ValueError(f"day-of-week field: {exc}") from None
    values = {"minute": minute, "hour": hour, "day": day, "month": month}
    for name, value in values.items():
        try:
            CronTrigger(**{name: value}, timezone=timezone)
        except ValueError as exc:
            raise ValueError(_cron_field_problem(name, str(exc))) from None
    return CronTrigger(**values, day_of_week=weekdays, timezone=timezone)


_CRON_RANGES: Final = {"minute": "0-59", "hour": "0-23", "day": "1-31", "month": "1-12 or jan-dec"}
_OUT_OF_RANGE = re.compile(
    r"the (?:first|last) value \((\d+)\) is (?:lower|higher) than the (?:minimum|maximum) value"
)


def _cron_field_problem(name: str, detail: str) -> str:
    """Describe a bad cron field without APScheduler's text, which quotes the field."""
    found = _OUT_OF_RANGE.search(detail)
    problem = f"value {found.group(1)} is out of range" if found else "is not valid"
    return (
        f"{name} field: {problem}; use *, a number ({_CRON_RANGES[name]}), a range, a list "
        f"or a /step"
    )


def validate_cron(expression: str) -> str:
    """Check a crontab expression and return it with whitespace normalised (single spaces)."""
    cron_trigger(expression)
    return " ".join(expression.split())
