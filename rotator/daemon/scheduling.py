"""Pure scheduling decisions of the daemon: when to look at a managed key next.

- After a healthy run the key's own ``schedule`` (interval or cron, with jitter) applies.
- While a switch-over is in progress (``waiting``), the key is re-checked every
  ``schedule.recheck``, so a revocation does not wait a whole interval.
- After a failed run the key is retried with exponential backoff from ``recheck`` — but the
  backoff *shrinks* as expiry approaches: never more than a quarter of the time left, and never
  scheduled past the expiry itself (a growing backoff that overshoots the expiry is how other
  tools let credentials lapse).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: Floor of any retry delay, so a hard failure does not turn into a busy loop.
MIN_RETRY = timedelta(seconds=10)


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
