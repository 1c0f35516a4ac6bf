"""Pure rotation decisions: is a key due, and may it be rotated now (maintenance windows)?

Every function here is a pure function of its arguments and ``now``, so the scheduling rules are
tested without clocks patched deep inside a scheduler (STYLE.md, "what this means" 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rotator.timespec import cron_trigger


def human_delta(delta: timedelta) -> str:
    """A short human duration: ``12d 3h``, ``5h 10m``, ``42s``; negative values get a minus."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    if minutes:
        return f"{sign}{minutes}m"
    return f"{sign}{secs}s"


@dataclass(frozen=True)
class Due:
    """Whether a key must be replaced, and why. ``critical`` ignores maintenance windows."""

    due: bool
    critical: bool
    reason: str


def rotation_due(
    *,
    expiration: datetime | None,
    created_at: datetime | None,
    validity: timedelta,
    rotate_before: timedelta,
    now: datetime,
) -> Due:
    """Decide from a key's expiry (or, with none, its age) whether it is due for rotation.

    - expired: due, critical;
    - expiry within ``rotate_before``: due;
    - no expiry: due once older than ``validity`` minus ``rotate_before`` (by creation time);
      never when the creation time is unknown either.
    """
    if expiration is not None:
        left = expiration - now
        if left <= timedelta(0):
            return Due(True, True, f"expired {human_delta(-left)} ago")
        if left <= rotate_before:
            return Due(
                True,
                False,
                f"expires in {human_delta(left)} (rotate {human_delta(rotate_before)} before)",
            )
        return Due(False, False, f"expires in {human_delta(left)}")
    if created_at is None:
        return Due(False, False, "never expires; age unknown")
    age = now - created_at
    if age >= validity - rotate_before:
        return Due(
            True,
            False,
            f"never expires but is {human_delta(age)} old (validity {human_delta(validity)})",
        )
    return Due(False, False, f"never expires; {human_delta(age)} old")


class Windows:
    """Maintenance windows: each cron expression (UTC) opens a window of ``duration``.

    ``"0 2-5 * * 1-5"`` with the default one-hour duration allows rotations from 02:00 to 06:00
    on weekdays. With no expressions every moment is inside a window.
    """

    def __init__(self, expressions: Sequence[str], duration: timedelta = timedelta(hours=1)):
        self.expressions = tuple(expressions)
        self.duration = duration
        self._triggers = [cron_trigger(e) for e in expressions]

    def __bool__(self) -> bool:
        return bool(self._triggers)

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` lies inside a window."""
        if not self._triggers:
            return True
        # Windows are half-open [start, start + duration): now is inside when some start lies
        # in (now - duration, now]. Cron fire times are whole seconds, so the first one after
        # `since` is found from `since + 1s`.
        since = (now - self.duration).replace(microsecond=0)
        for trigger in self._triggers:
            start = trigger.get_next_fire_time(None, since + timedelta(seconds=1))
            if start is not None and start <= now:
                return True
        return False

    def next_start(self, now: datetime) -> datetime | None:
        """The start of the next window after ``now`` (None with no windows)."""
        starts = [t.get_next_fire_time(None, now) for t in self._triggers]
        found = [s for s in starts if s is not None]
        return min(found).astimezone(UTC) if found else None


@dataclass(frozen=True)
class Gate:
    """Whether a due rotation may run now."""

    allowed: bool
    reason: str


def window_gate(
    due: Due,
    windows: Windows,
    *,
    expiration: datetime | None,
    margin: timedelta,
    now: datetime,
) -> Gate:
    """Let a due rotation run inside a window, or outside one when waiting would be unsafe.

    Waiting is unsafe when the key is critical (expired, missing, not accepted) or when its
    expiry comes before the next window opens plus ``margin`` (the worst-case time a rotation
    needs to complete: switch timeout, grace period and a run interval).
    """
    if not windows or due.critical:
        return Gate(True, "")
    if windows.contains(now):
        return Gate(True, "inside a maintenance window")
    next_start = windows.next_start(now)
    if expiration is not None and (next_start is None or expiration <= next_start + margin):
        when = (
            "no window ahead" if next_start is None else f"next window {next_start:%Y-%m-%d %H:%M}Z"
        )
        return Gate(True, f"outside maintenance windows, but expiry is too close to wait ({when})")
    when = "no window ahead" if next_start is None else f"next window {next_start:%Y-%m-%d %H:%M}Z"
    return Gate(False, f"waiting for a maintenance window ({when})")
