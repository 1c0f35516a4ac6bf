"""Pure scheduling decisions of the daemon: when to look at a managed key next.

- Each key's :class:`Schedule` (``schedule:`` of its policy) lives here, beside its
  :class:`~rotator.engine.model.KeySpec`, not in it: the engine does not know when it runs.
- Keys are run in batches: one batch per distinct schedule (interval or cron, plus jitter), so
  a tick observes all its keys with one StackState list per key kind (:func:`batches`).
- After a healthy run the key's own ``schedule`` (interval or cron, with jitter) applies.
- While a switch-over is in progress (``waiting``), the key is re-checked every
  ``schedule.recheck``, so a revocation does not wait a whole interval.
- After a failed run the key is retried with exponential backoff from ``recheck`` — but the
  backoff *shrinks* as expiry approaches: never more than a quarter of the time left, and never
  scheduled past the expiry itself (a growing backoff that overshoots the expiry is how other
  tools let credentials lapse).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rotator.timespec import cron_trigger, format_duration

if TYPE_CHECKING:
    from rotator.config import ManagedKey

#: Floor of any retry delay, so a hard failure does not turn into a busy loop.
MIN_RETRY = timedelta(seconds=10)

#: The regular interval when a schedule gives neither interval nor cron (the config's default).
DEFAULT_INTERVAL: Final = timedelta(hours=1)


@dataclass(frozen=True)
class Schedule:
    """When the daemon looks at one managed key: every ``interval`` or at the times of ``cron``
    (UTC), each run delayed by up to ``jitter``; ``recheck`` while a switch-over is in progress
    and as the base of the backoff after a failure."""

    interval: timedelta | None = DEFAULT_INTERVAL
    cron: str | None = None
    jitter: timedelta = timedelta(0)
    recheck: timedelta = timedelta(minutes=1)

    @property
    def batch(self) -> str:
        """What keys run together share: the trigger (interval or cron) and the jitter.

        ``every 1h``, ``cron 0 */6 * * *``, plus `` jitter 30s`` when there is one; ``recheck``
        is per key and not part of it.
        """
        when = f"cron {self.cron}" if self.cron is not None else f"every {self._every}"
        if self.jitter > timedelta(0):
            when += f" jitter {format_duration(self.jitter)}"
        return when

    def trigger(self) -> BaseTrigger:
        """The APScheduler trigger of this schedule's batch job (jitter included)."""
        jitter = int(self.jitter.total_seconds()) or None
        if self.cron is not None:
            trigger = cron_trigger(self.cron)
            trigger.jitter = jitter
            return trigger
        return IntervalTrigger(seconds=self.ceiling.total_seconds(), jitter=jitter, timezone=UTC)

    @property
    def ceiling(self) -> timedelta:
        """The longest backoff after failures: the interval (one hour for a cron schedule)."""
        return self.interval or DEFAULT_INTERVAL

    @property
    def _every(self) -> str:
        return format_duration(self.interval or DEFAULT_INTERVAL)


def key_schedules(keys: Iterable[ManagedKey]) -> dict[str, Schedule]:
    """Each managed key's schedule, by key name, from its resolved policy."""
    found = {}
    for key in keys:
        schedule = key.policy.schedule
        found[key.name] = Schedule(
            interval=schedule.interval,
            cron=schedule.cron,
            jitter=schedule.jitter,
            recheck=schedule.recheck,
        )
    return found


def batches(schedules: Mapping[str, Schedule]) -> dict[str, list[str]]:
    """Key names per batch (:attr:`Schedule.batch`), both in configuration order."""
    grouped: dict[str, list[str]] = {}
    for name, schedule in schedules.items():
        grouped.setdefault(schedule.batch, []).append(name)
    return grouped


@dataclass(frozen=True)
class NextCheck:
    """When to run a key again (None: leave it to the regular schedule) and why."""

    delay: timedelta | None
    reason: str


def retry_delay(
    attempt: int,
    *,
    base: timedelta,
    ceiling: timedelta,
    expires_at: datetime | None,
    now: datetime,
) -> timedelta:
    """Backoff for the ``attempt``-th consecutive failure (1-based).

    ``base * 2**(attempt-1)``, capped at ``ceiling`` and at a quarter of the time left before
    ``expires_at``; at least :data:`MIN_RETRY`; and never past the expiry while it is ahead.
    """
    # Compare in seconds first: base * 2**40 would overflow timedelta long before any cap.
    seconds = min(
        base.total_seconds() * 2.0 ** min(max(0, attempt - 1), 60), ceiling.total_seconds()
    )
    delay = timedelta(seconds=seconds)
    if expires_at is not None:
        left = expires_at - now
        if left > timedelta(0):
            delay = min(delay, left / 4)
    return max(delay, MIN_RETRY)


def next_check(
    outcome: str,
    *,
    failures: int,
    recheck: timedelta,
    interval: timedelta,
    expires_at: datetime | None,
    now: datetime,
) -> NextCheck:
    """Decide the next look at a key from its last outcome (pure)."""
    if outcome == "failed":
        delay = retry_delay(
            failures, base=recheck, ceiling=interval, expires_at=expires_at, now=now
        )
        return NextCheck(delay, f"retry #{failures} after a failure")
    if outcome in ("waiting", "rotated"):
        # A push starts a switch-over; follow it closely until the old key is revoked.
        return NextCheck(recheck, "switch-over in progress")
    return NextCheck(None, "healthy: regular schedule")


class Rechecks:
    """The looks at keys outside their schedule: a switch-over's rechecks and the retries after
    failures (not thread-safe: the daemon holds its run lock).

    A key in *backoff* (its last run failed) is skipped by its schedule's batch until its retry
    is due, so a failing key is retried on the backoff's terms, not every tick.
    """

    def __init__(self) -> None:
        self._due: dict[str, datetime] = {}
        self._backoff: dict[str, datetime] = {}

    def record(self, name: str, decision: NextCheck, *, failed: bool, now: datetime) -> None:
        """Plan (or drop) the next look at ``name`` after a run decided ``decision``."""
        self._backoff.pop(name, None)
        if decision.delay is None:
            self._due.pop(name, None)
            return
        self._due[name] = now + decision.delay
        if failed:
            self._backoff[name] = now + decision.delay

    def due(self, name: str) -> datetime | None:
        """When ``name`` is looked at next outside its schedule (None: not planned)."""
        return self._due.get(name)

    def in_backoff(self, name: str, now: datetime) -> bool:
        """Whether ``name`` failed and its retry is not due yet."""
        return self._backoff.get(name, now) > now

    def take(self, until: datetime) -> list[str]:
        """The keys due by ``until``, forgotten (their run plans their next look again)."""
        names = [name for name, when in self._due.items() if when <= until]
        for name in names:
            del self._due[name]
        return names

    def earliest(self) -> datetime | None:
        """The first look due (None: none planned)."""
        return min(self._due.values(), default=None)

    def keep(self, names: Iterable[str]) -> None:
        """Forget every key not in ``names`` (removed from the configuration)."""
        kept = set(names)
        self._due = {k: v for k, v in self._due.items() if k in kept}
        self._backoff = {k: v for k, v in self._backoff.items() if k in kept}
