"""Tests for rotator.daemon.scheduling: when the daemon looks at a key next."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.daemon.scheduling import (
    MIN_RETRY,
    NextCheck,
    Rechecks,
    Schedule,
    batches,
    key_schedules,
    next_check,
    retry_delay,
)
from tests.plugins.config import ConfigLoader, minimal_config

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


class TestSchedule:
    """A key's schedule lives beside its spec; keys sharing a trigger and jitter share a batch."""

    def test_batch_names_the_trigger_and_the_jitter_not_the_recheck(self) -> None:
        """Interval or cron plus jitter make the batch; recheck is per key."""
        assert Schedule(interval=HOUR).batch == "every 1h"
        assert Schedule(interval=HOUR, jitter=timedelta(seconds=30)).batch == "every 1h jitter 30s"
        assert Schedule(interval=None, cron="0 */6 * * *").batch == "cron 0 */6 * * *"
        assert Schedule(recheck=MINUTE).batch == Schedule(recheck=10 * MINUTE).batch

    def test_the_backoff_ceiling_is_the_interval_or_an_hour(self) -> None:
        """A cron schedule has no interval: its retries are capped at one hour."""
        assert Schedule(interval=6 * HOUR).ceiling == 6 * HOUR
        assert Schedule(interval=None, cron="0 3 * * *").ceiling == HOUR

    def test_the_trigger_carries_interval_or_cron_and_the_jitter(self) -> None:
        """An interval schedule fires every interval; a cron one at its times (UTC, Sunday 0)."""
        every = Schedule(interval=6 * HOUR, jitter=timedelta(seconds=30)).trigger()
        assert every.interval == 6 * HOUR
        assert every.jitter == 30
        nightly = Schedule(interval=None, cron="0 3 * * 0").trigger()
        assert nightly.jitter is None
        fire = nightly.get_next_fire_time(None, NOW)
        assert fire is not None
        assert (fire.weekday(), fire.hour, fire.minute) == (6, 3, 0)

    def test_batches_group_keys_in_configuration_order(self) -> None:
        """Each distinct schedule gets one batch holding its keys, first-seen order."""
        hourly = Schedule(interval=HOUR)
        nightly = Schedule(interval=None, cron="0 3 * * *")
        grouped = batches(
            {"a": hourly, "b": nightly, "c": hourly, "d": Schedule(interval=HOUR, recheck=HOUR)}
        )
        assert grouped == {"every 1h": ["a", "c", "d"], "cron 0 3 * * *": ["b"]}

    def test_key_schedules_come_from_the_resolved_policy(
        self, load_yaml_config: ConfigLoader
    ) -> None:
        """defaults.schedule applies to every key; a key's own schedule overrides it."""
        data = minimal_config()
        data["defaults"] = {"schedule": {"interval": "2h", "jitter": "0s", "recheck": "30s"}}
        other = copy.deepcopy(data["keys"][0])
        other["name"] = "nightly"
        other["targets"][0]["name"] = "nightly-key"
        other["schedule"] = {"cron": "0 3 * * *"}
        data["keys"].append(other)
        schedules = key_schedules(load_yaml_config(data).keys)
        assert schedules["agent"] == Schedule(
            interval=2 * HOUR, jitter=timedelta(0), recheck=timedelta(seconds=30)
        )
        assert schedules["nightly"].cron == "0 3 * * *"
        assert schedules["nightly"].interval is None


class TestRechecks:
    """Looks outside the schedule: switch-over rechecks and retries in backoff."""

    def test_a_failure_puts_the_key_in_backoff_until_its_retry(self) -> None:
        """Failed: due at now + delay and in backoff until then; a healthy run clears both."""
        looks = Rechecks()
        looks.record("a", NextCheck(2 * MINUTE, "retry"), failed=True, now=NOW)
        assert looks.due("a") == NOW + 2 * MINUTE
        assert looks.in_backoff("a", NOW + MINUTE)
        assert not looks.in_backoff("a", NOW + 2 * MINUTE)
        looks.record("a", NextCheck(None, "healthy"), failed=False, now=NOW)
        assert looks.due("a") is None
        assert not looks.in_backoff("a", NOW)

    def test_a_switch_over_is_rechecked_without_backoff(self) -> None:
        """Waiting: due at now + recheck, but the regular batch may still run the key."""
        looks = Rechecks()
        looks.record("a", NextCheck(MINUTE, "switch-over"), failed=False, now=NOW)
        assert looks.due("a") == NOW + MINUTE
        assert not looks.in_backoff("a", NOW)

    def test_take_returns_every_key_due_and_forgets_them(self) -> None:
        """Keys due by ``until`` come out together, in the order they were planned."""
        looks = Rechecks()
        looks.record("a", NextCheck(MINUTE, "x"), failed=False, now=NOW)
        looks.record("b", NextCheck(MINUTE + timedelta(seconds=3), "x"), failed=False, now=NOW)
        looks.record("c", NextCheck(HOUR, "x"), failed=False, now=NOW)
        assert looks.earliest() == NOW + MINUTE
        assert looks.take(NOW + MINUTE + timedelta(seconds=5)) == ["a", "b"]
        assert looks.earliest() == NOW + HOUR
        assert looks.take(NOW + MINUTE) == []

    def test_keep_forgets_removed_keys(self) -> None:
        """A reload that removes a key drops its recheck and backoff."""
        looks = Rechecks()
        looks.record("a", NextCheck(MINUTE, "x"), failed=True, now=NOW)
        looks.record("b", NextCheck(MINUTE, "x"), failed=True, now=NOW)
        looks.keep(["b"])
        assert looks.due("a") is None and not looks.in_backoff("a", NOW)
        assert looks.due("b") is not None
