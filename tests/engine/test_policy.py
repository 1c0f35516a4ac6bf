"""Rotation decisions: is a key due, and may it be rotated now (rotator.engine.policy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.engine.policy import Due, Gate, Windows, human_delta, rotation_due, window_gate

# Tuesday 24 November 2026, noon UTC: outside the weekday 02:00-06:00 window used below.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VALIDITY = timedelta(days=90)
ROTATE_BEFORE = timedelta(days=14)
WEEKDAY_NIGHTS = "0 2-5 * * 1-5"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment in the week of 23 November 2026 (day 23 is a Monday)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def due_by_expiry(expiration: datetime | None, now: datetime = NOW) -> Due:
    """rotation_due for a key with the default validity and rotate_before."""
    return rotation_due(
        expiration=expiration,
        created_at=None,
        validity=VALIDITY,
        rotate_before=ROTATE_BEFORE,
        now=now,
    )


def due_by_age(created_at: datetime | None) -> Due:
    """rotation_due for a key that never expires, judged by its creation time."""
    return rotation_due(
        expiration=None,
        created_at=created_at,
        validity=VALIDITY,
        rotate_before=ROTATE_BEFORE,
        now=NOW,
    )


class TestRotationDue:
    """rotation_due judges a key by its expiry, or by its age when it never expires."""

    def test_expired_key_is_due_and_critical(self) -> None:
        """A key past its expiry must be replaced now, whatever the windows say."""
        due = due_by_expiry(NOW - timedelta(hours=3))
        assert due == Due(True, True, "expired 3h ago")

    def test_key_expiring_this_instant_is_expired(self) -> None:
        """A key whose expiry is exactly now counts as expired."""
        due = due_by_expiry(NOW)
        assert (due.due, due.critical) == (True, True)

    def test_key_inside_rotate_before_is_due(self) -> None:
        """A key expiring within rotate_before is due, but not critical."""
        due = due_by_expiry(NOW + timedelta(days=3))
        assert due == Due(True, False, "expires in 3d (rotate 14d before)")

    def test_key_exactly_at_the_boundary_is_due(self) -> None:
        """A key expiring exactly rotate_before from now is due."""
        due = due_by_expiry(NOW + ROTATE_BEFORE)
        assert (due.due, due.critical) == (True, False)

    def test_key_one_second_outside_the_boundary_is_not_due(self) -> None:
        """A key expiring one second later than rotate_before from now is not due yet."""
        due = due_by_expiry(NOW + ROTATE_BEFORE + timedelta(seconds=1))
        assert due.due is False

    def test_key_far_from_expiry_is_not_due(self) -> None:
        """A fresh key is not due, and the reason says when it expires."""
        due = due_by_expiry(NOW + timedelta(days=60))
        assert due == Due(False, False, "expires in 60d")

    def test_never_expiring_key_is_due_once_old_enough(self) -> None:
        """A key without expiry is due once older than validity minus rotate_before."""
        due = due_by_age(NOW - (VALIDITY - ROTATE_BEFORE))
        assert due == Due(True, False, "never expires but is 76d old (validity 90d)")

    def test_never_expiring_young_key_is_not_due(self) -> None:
        """A key without expiry that is younger than validity minus rotate_before is not due."""
        due = due_by_age(NOW - (VALIDITY - ROTATE_BEFORE) + timedelta(seconds=1))
        assert due.due is False

    def test_never_expiring_key_of_unknown_age_is_not_due(self) -> None:
        """A key with neither expiry nor a known creation time is left alone."""
        due = due_by_age(None)
        assert due == Due(False, False, "never expires; age unknown")


class TestHumanDelta:
    """human_delta renders durations with their two largest units."""

    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(days=12, hours=3), "12d 3h"),
            (timedelta(days=12), "12d"),
            (timedelta(days=1, minutes=30), "1d"),
            (timedelta(hours=5, minutes=10), "5h 10m"),
            (timedelta(hours=5), "5h"),
            (timedelta(minutes=7, seconds=30), "7m"),
            (timedelta(seconds=42), "42s"),
            (timedelta(0), "0s"),
            (timedelta(seconds=42, microseconds=900_000), "42s"),
            (-timedelta(minutes=5), "-5m"),
            (-timedelta(days=2, hours=1), "-2d 1h"),
        ],
    )
    def test_formats_durations(self, delta: timedelta, text: str) -> None:
        """Each duration renders in the short human form."""
        assert human_delta(delta) == text


class TestWindows:
    """Windows: cron expressions (UTC) that each open a window of a fixed duration."""

    @pytest.mark.parametrize(
        "moment",
        [at(24, 2), at(24, 2, 30), at(24, 3, 30), at(24, 5, 59, 59), at(23, 4, 15), at(27, 5, 30)],
    )
    def test_weekday_night_moments_are_inside(self, moment: datetime) -> None:
        """``0 2-5 * * 1-5`` with one-hour windows covers 02:00-06:00 Monday to Friday."""
        assert Windows([WEEKDAY_NIGHTS]).contains(moment)

    @pytest.mark.parametrize(
        "moment",
        [at(24, 1, 59, 59), at(24, 6), at(24, 6, 0, 1), at(24, 12), at(28, 3, 30), at(29, 2)],
    )
    def test_other_moments_are_outside(self, moment: datetime) -> None:
        """Before 02:00, from 06:00 on (half-open), and at weekends no window is open."""
        assert not Windows([WEEKDAY_NIGHTS]).contains(moment)

    @pytest.mark.parametrize("moment", [at(24, 3), at(24, 4), at(24, 5)])
    def test_hourly_starts_inside_a_night_are_inside(self, moment: datetime) -> None:
        """Exactly 03:00, 04:00 and 05:00, where one hourly window meets the next, are inside."""
        assert Windows([WEEKDAY_NIGHTS]).contains(moment)

    @pytest.mark.parametrize(
        ("moment", "inside"),
        [
            (at(24, 1, 59, 59).replace(microsecond=999_999), False),
            (at(24, 2).replace(microsecond=1), True),
            (at(24, 3).replace(microsecond=500_000), True),
            (at(24, 5, 59, 59).replace(microsecond=999_999), True),
            (at(24, 6).replace(microsecond=1), False),
        ],
    )
    def test_fractions_of_a_second_respect_the_boundaries(
        self, moment: datetime, inside: bool
    ) -> None:
        """Moments with microseconds next to a boundary fall on the correct side of it."""
        assert Windows([WEEKDAY_NIGHTS]).contains(moment) is inside

    def test_every_minute_of_a_week_matches_the_cron_meaning(self) -> None:
        """Over a whole week, a minute is inside exactly when it is a weekday between 02 and 06."""
        windows = Windows([WEEKDAY_NIGHTS])
        start = at(23, 0)
        wrong = [
            moment
            for moment in (start + timedelta(minutes=m) for m in range(7 * 24 * 60))
            if windows.contains(moment) != (moment.weekday() < 5 and 2 <= moment.hour < 6)
        ]
        assert wrong == []

    def test_longer_duration_widens_the_window(self) -> None:
        """A two-hour duration keeps the 05:00 window open until 07:00."""
        windows = Windows([WEEKDAY_NIGHTS], duration=timedelta(hours=2))
        assert windows.contains(at(24, 6, 30))
        assert not windows.contains(at(24, 7))

    def test_any_of_several_expressions_opens_a_window(self) -> None:
        """With several expressions, a moment inside any one window is inside."""
        windows = Windows([WEEKDAY_NIGHTS, "0 10 * * 6"])
        assert windows.contains(at(28, 10, 30))
        assert windows.contains(at(24, 2, 30))
        assert not windows.contains(at(28, 11))

    def test_next_start_is_the_next_night(self) -> None:
        """After Tuesday's window closed, the next one opens Wednesday 02:00."""
        assert Windows([WEEKDAY_NIGHTS]).next_start(NOW) == at(25, 2)

    def test_next_start_skips_the_weekend(self) -> None:
        """On a Saturday the next window opens Monday 02:00."""
        assert Windows([WEEKDAY_NIGHTS]).next_start(at(28, 3)) == at(30, 2)

    def test_next_start_is_the_earliest_of_several_expressions(self) -> None:
        """With several expressions the next start is the earliest of them."""
        windows = Windows([WEEKDAY_NIGHTS, "30 18 * * *"])
        assert windows.next_start(NOW) == at(24, 18, 30)

    def test_no_expressions_mean_always_inside(self) -> None:
        """Without windows every moment is allowed and there is no next start."""
        windows = Windows([])
        assert not windows
        assert windows.contains(at(28, 3, 17))
        assert windows.next_start(NOW) is None

    def test_expressions_make_windows_truthy(self) -> None:
        """Windows with at least one expression are truthy (rotation is restricted)."""
        assert Windows([WEEKDAY_NIGHTS])


class TestWindowGate:
    """window_gate lets a due rotation run inside a window, or outside when waiting is unsafe."""

    due = Due(True, False, "expires in 10d (rotate 14d before)")
    margin = timedelta(hours=3)
    windows = Windows([WEEKDAY_NIGHTS])

    def gate(self, now: datetime, expiration: datetime | None, due: Due | None = None) -> Gate:
        """window_gate with weekday-night windows and a three-hour margin."""
        return window_gate(
            due or self.due, self.windows, expiration=expiration, margin=self.margin, now=now
        )

    def test_inside_a_window_is_allowed(self) -> None:
        """A due rotation inside a window may run."""
        assert self.gate(at(24, 3, 30), NOW + timedelta(days=10)) == Gate(
            True, "inside a maintenance window"
        )

    def test_outside_a_window_waits_for_the_next_one(self) -> None:
        """Outside a window a due rotation waits, and the reason names the next window."""
        gate = self.gate(NOW, NOW + timedelta(days=10))
        assert gate == Gate(
            False, "waiting for a maintenance window (next window 2026-11-25 02:00Z)"
        )

    def test_critical_rotation_ignores_windows(self) -> None:
        """An expired or unusable key is replaced outside windows too."""
        critical = Due(True, True, "expired 1h ago")
        assert self.gate(NOW, NOW - timedelta(hours=1), critical).allowed

    def test_expiry_before_next_window_plus_margin_is_allowed(self) -> None:
        """When the key would expire before the next window plus margin, it rotates now."""
        gate = self.gate(NOW, at(25, 4))
        assert gate.allowed
        assert "expiry is too close to wait" in gate.reason
        assert "next window 2026-11-25 02:00Z" in gate.reason

    def test_expiry_exactly_at_next_window_plus_margin_is_allowed(self) -> None:
        """An expiry exactly at the next window's start plus margin does not wait."""
        assert self.gate(NOW, at(25, 2) + self.margin).allowed

    def test_expiry_just_after_next_window_plus_margin_waits(self) -> None:
        """An expiry one second later than the next window plus margin waits for the window."""
        assert not self.gate(NOW, at(25, 2) + self.margin + timedelta(seconds=1)).allowed

    def test_unknown_expiry_waits_for_a_window(self) -> None:
        """A key of unknown expiry (an adopted value) waits for the next window."""
        assert not self.gate(NOW, None).allowed

    def test_no_windows_always_allow(self) -> None:
        """Without windows a due rotation runs at once, with no window reason."""
        gate = window_gate(self.due, Windows([]), expiration=None, margin=self.margin, now=NOW)
        assert gate == Gate(True, "")

    def test_exactly_at_an_hourly_start_inside_a_night_is_allowed(self) -> None:
        """At exactly 03:00 on a weekday, inside the 02:00-06:00 night, a due rotation runs."""
        assert self.gate(at(24, 3), NOW + timedelta(days=10)).allowed
