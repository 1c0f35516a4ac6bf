"""Tests for rotator.daemon.scheduling: when the daemon looks at a key next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.daemon.scheduling import MIN_RETRY, next_check, retry_delay

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


class TestRetryDelay:
    """Backoff after failures shrinks as expiry approaches and never passes it."""

    def test_backoff_doubles_from_the_recheck_interval(self) -> None:
        """1m, 2m, 4m, 8m ... for consecutive failures far from expiry."""
        delays = [
            retry_delay(n, base=MINUTE, ceiling=HOUR, expires_at=NOW + timedelta(days=30), now=NOW)
            for n in range(1, 5)
        ]
        assert delays == [MINUTE, 2 * MINUTE, 4 * MINUTE, 8 * MINUTE]

    def test_backoff_is_capped_by_the_schedule_interval(self) -> None:
        """Many failures never wait longer than the regular interval."""
        delay = retry_delay(30, base=MINUTE, ceiling=HOUR, expires_at=None, now=NOW)
        assert delay == HOUR

    def test_backoff_shrinks_near_expiry(self) -> None:
        """Two hours before expiry a retry comes within 30 minutes, whatever the attempt count."""
        delay = retry_delay(10, base=MINUTE, ceiling=HOUR, expires_at=NOW + 2 * HOUR, now=NOW)
        assert delay == timedelta(minutes=30)

    @given(
        attempt=st.integers(min_value=1, max_value=64),
        left=st.integers(min_value=41, max_value=90 * 86400),
    )
    def test_never_scheduled_past_expiry(self, attempt: int, left: int) -> None:
        """For any attempt and any time left above the floor, the retry comes before expiry."""
        expires = NOW + timedelta(seconds=left)
        delay = retry_delay(attempt, base=MINUTE, ceiling=6 * HOUR, expires_at=expires, now=NOW)
        assert delay >= MIN_RETRY
        assert NOW + delay < expires


class TestNextCheck:
    """The next look after an outcome."""

    def test_waiting_keys_are_rechecked_soon(self) -> None:
        """A switch-over in progress is followed every recheck interval."""
        check = next_check(
            "waiting", failures=0, recheck=MINUTE, interval=HOUR, expires_at=None, now=NOW
        )
        assert check.delay == MINUTE

    def test_healthy_keys_follow_their_schedule(self) -> None:
        """ok / revoked / unchanged leave the key to its regular schedule."""
        for outcome in ("unchanged", "revoked"):
            check = next_check(
                outcome, failures=0, recheck=MINUTE, interval=HOUR, expires_at=None, now=NOW
            )
            assert check.delay is None

    def test_failures_back_off(self) -> None:
        """The third consecutive failure waits four recheck intervals."""
        check = next_check(
            "failed",
            failures=3,
            recheck=MINUTE,
            interval=HOUR,
            expires_at=NOW + timedelta(days=9),
            now=NOW,
        )
        assert check.delay == 4 * MINUTE
        assert "retry #3" in check.reason
