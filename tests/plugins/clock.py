"""The frozen clock every emulator fixture uses: tests move time on purpose, never by waiting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FrozenClock:
    """A frozen, thread-safe UTC clock; call it (or read ``now``) for the time."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._lock = threading.Lock()
        self._now = start.astimezone(UTC)

    @property
    def now(self) -> datetime:
        """The current (frozen) time."""
        with self._lock:
            return self._now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock by ``delta`` (a timedelta or seconds; may be negative)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to an aware ``moment``."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        with self._lock:
            self._now = moment.astimezone(UTC)
