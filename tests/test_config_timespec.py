"""Durations, percentages and cron expressions as users write them (rotator.timespec)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.config import format_duration, parse_duration
from rotator.timespec import MAX_DURATION, Percentage, cron_trigger, validate_cron

SECRETISH = "sk-9f8e7d6c5b4a"


class TestParseDuration:
    """parse_duration reads d/h/m/s durations and plain seconds."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90d", timedelta(days=90)),
            ("12h", timedelta(hours=12)),
            ("30m", timedelta(minutes=30)),
            ("45s", timedelta(seconds=45)),
            ("1d12h", timedelta(days=1, hours=12)),
            ("1h30m", timedelta(hours=1, minutes=30)),
            ("2d3h4m5s", timedelta(days=2, hours=3, minutes=4, seconds=5)),
            ("3600", timedelta(hours=1)),
            ("0", timedelta(0)),
            ("0s", timedelta(0)),
            (" 5m ", timedelta(minutes=5)),
            ("90m", timedelta(minutes=90)),
        ],
    )
    def test_accepts_documented_forms(self, text: str, expected: timedelta) -> None:
        """Every documented duration form parses to the expected timedelta."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("-5m", "negative"),
            ("5w", "unknown duration unit 'w'"),
            ("10ms", "unknown duration unit 'ms'"),
            ("1.5h", "whole numbers"),
            ("m", "not a duration"),
            ("1h30", "needs a unit"),
            ("1h1d", "in the order d, h, m, s"),
            ("1h1h", "at most once"),
            ("1d 12h", "not a duration"),
            ("soon", "not a duration"),
            ("999999999999d", "too large"),
        ],
    )
    def test_rejects_bad_text_with_a_clear_message(self, text: str, fragment: str) -> None:
        """Malformed durations raise ValueError saying what is wrong."""
        with pytest.raises(ValueError, match=fragment):
            parse_duration(text)

    def test_message_does_not_repeat_the_text(self) -> None:
        """A secret pasted into a duration field is not echoed by the error."""
        with pytest.raises(ValueError, match="duration") as info:
            parse_duration(SECRETISH)
        assert SECRETISH not in str(info.value)


class TestFormatDuration:
    """format_duration renders durations the way users write them."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (timedelta(0), "0s"),
            (timedelta(seconds=45), "45s"),
            (timedelta(days=1, hours=12), "1d12h"),
            (timedelta(hours=1, minutes=30), "1h30m"),
            (timedelta(days=90), "90d"),
            (timedelta(days=2, seconds=5), "2d5s"),
            (timedelta(seconds=89.6), "1m30s"),
        ],
    )
    def test_renders_compact_form(self, value: timedelta, expected: str) -> None:
        """Zero parts are left out and fractions of a second are rounded."""
        assert format_duration(value) == expected

    def test_refuses_negative(self) -> None:
        """Negative durations have no written form."""
        with pytest.raises(ValueError, match="negative"):
            format_duration(timedelta(seconds=-1))

    @given(st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds())))
    def test_round_trips_through_parse(self, seconds: int) -> None:
        """parse_duration(format_duration(d)) == d for every whole-second duration it accepts."""
        value = timedelta(seconds=seconds)
        assert parse_duration(format_duration(value)) == value

    @given(st.integers(min_value=int(MAX_DURATION.total_seconds()) + 1, max_value=10**40))
    def test_beyond_100_years_is_refused(self, seconds: int) -> None:
        """Past MAX_DURATION (36500d) any spelling is refused: no date could hold it."""
        for text in (str(seconds), f"{seconds}s", f"{seconds // 86_400 + 1}d"):
            with pytest.raises(ValueError, match="too large: at most 36500d"):
                parse_duration(text)

    @given(
        st.fixed_dictionaries(
            {},
            optional={unit: st.integers(min_value=0, max_value=10_000) for unit in "dhms"},
        ).filter(bool)
    )
    def test_written_forms_keep_their_value(self, parts: dict[str, int]) -> None:
        """Any d/h/m/s combination, re-rendered, still means the same duration."""
        text = "".join(f"{parts[unit]}{unit}" for unit in "dhms" if unit in parts)
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


class TestPercentage:
    """Percentage is a share of a key's validity."""

    def test_of_rounds_to_whole_seconds(self) -> None:
        """30% of 90d is 27d, and odd shares are rounded to whole seconds."""
        assert Percentage(30).of(timedelta(days=90)) == timedelta(days=27)
        assert Percentage(33).of(timedelta(seconds=10)) == timedelta(seconds=3)

    def test_str_is_the_written_form(self) -> None:
        """A percentage prints as users write it."""
        assert str(Percentage(30.0)) == "30%"
        assert str(Percentage(12.5)) == "12.5%"


# 2024-01-01 is a Monday; next fire times are computed from fixed instants, never the clock.
MONDAY = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


def next_fire(expression: str, after: datetime = MONDAY) -> datetime:
    """The first time at or after ``after`` that ``expression`` fires."""
    fire = cron_trigger(expression).get_next_fire_time(None, after)
    assert fire is not None
    return fire


class TestCronTrigger:
    """cron_trigger reads crontab(5) lines, weekday numbers included."""

    def test_numeric_weekdays_count_from_sunday(self) -> None:
        """Day-of-week 1 is Monday, as in crontab (APScheduler alone would say Tuesday)."""
        assert next_fire("0 2 * * 1") == datetime(2024, 1, 1, 2, 0, tzinfo=UTC)

    @pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
    def test_sunday_is_0_or_7(self, sunday: str) -> None:
        """0, 7 and sun all mean Sunday."""
        assert next_fire(f"0 0 * * {sunday}") == datetime(2024, 1, 7, 0, 0, tzinfo=UTC)

    def test_weekday_range_is_monday_to_friday(self) -> None:
        """1-5 fires Monday to Friday and skips the weekend."""
        saturday = datetime(2024, 1, 6, 0, 0, tzinfo=UTC)
        assert next_fire("0 3 * * 1-5", saturday) == datetime(2024, 1, 8, 3, 0, tzinfo=UTC)
        assert next_fire("0 3 * * mon-fri", saturday) == datetime(2024, 1, 8, 3, 0, tzinfo=UTC)

    def test_range_ending_on_7_includes_sunday(self) -> None:
        """5-7 is Friday through Sunday."""
        saturday_noon = datetime(2024, 1, 6, 12, 0, tzinfo=UTC)
        assert next_fire("0 1 * * 5-7", saturday_noon) == datetime(2024, 1, 7, 1, 0, tzinfo=UTC)

    def test_weekday_steps(self) -> None:
        """*/2 on weekdays is Sunday, Tuesday, Thursday, Saturday."""
        assert next_fire("0 0 * * */2") == datetime(2024, 1, 2, 0, 0, tzinfo=UTC)

    def test_minute_and_hour_fields(self) -> None:
        """Every six hours at minute 0."""
        after = datetime(2024, 1, 1, 7, 30, tzinfo=UTC)
        assert next_fire("0 */6 * * *", after) == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("expression", "fragment"),
        [
            ("* * * *", "5 fields"),
            ("* * * * * *", "5 fields"),
            ("@daily", "5 fields"),
            ("61 * * * *", "minute field"),
            ("* 24 * * *", "hour field"),
            ("* * 32 * *", "day field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week"),
            ("* * * * 5-1", "day-of-week"),
            ("* * * * 1,,2", "day-of-week"),
            ("* * * * */0", "day-of-week"),
            ("0 0 1 * 1", "not both"),
        ],
    )
    def test_rejects_invalid_expressions(self, expression: str, fragment: str) -> None:
        """Each malformed field is named in the error."""
        with pytest.raises(ValueError, match=fragment):
            cron_trigger(expression)

    def test_validate_cron_normalises_whitespace(self) -> None:
        """validate_cron returns the expression with single spaces."""
        assert validate_cron("  0   2-5 * *\t1-5 ") == "0 2-5 * * 1-5"
