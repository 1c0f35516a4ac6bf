"""Names of the keys the rotator creates, ``<managed>-<YYYYMMDDTHHMMSSZ>[-<4 hex>]``
(engine.naming)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.engine.naming import (
    MANAGED_BY_MARKER,
    ManagedName,
    key_name,
    managed_description,
    managed_owner,
    name_nonce,
    parse_key_name,
    unique_key_name,
)

NOW = datetime(2026, 11, 24, 12, 0, 5, tzinfo=UTC)

managed_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True)
# Second resolution, the precision of the name's suffix; four-digit years, the suffix's width.
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda moment: moment.replace(microsecond=0))


class TestKeyName:
    """key_name builds ``<managed>-<UTC timestamp>``."""

    def test_appends_the_utc_timestamp(self) -> None:
        """The name is the managed name, a dash and the compact UTC timestamp."""
        assert key_name("agent", NOW) == "agent-20261124T120005Z"

    def test_converts_other_offsets_to_utc(self) -> None:
        """A moment given with another UTC offset is named by its UTC time."""
        cet = timezone(timedelta(hours=1))
        assert key_name("agent", datetime(2026, 11, 24, 13, 0, 5, tzinfo=cet)) == (
            "agent-20261124T120005Z"
        )

    def test_drops_fractions_of_a_second(self) -> None:
        """Microseconds do not appear in the name (keys are named to the second)."""
        assert key_name("agent", NOW.replace(microsecond=999_999)) == "agent-20261124T120005Z"

    @given(managed=managed_names, moment=moments)
    def test_round_trips_through_parse_key_name(self, managed: str, moment: datetime) -> None:
        """Parsing a generated name gives back the managed name and the creation second."""
        assert parse_key_name(key_name(managed, moment)) == ManagedName(managed, moment)

    def test_appends_a_nonce_when_given(self) -> None:
        """With a nonce the name ends in a dash and the four hex digits."""
        assert key_name("agent", NOW, "0f3a") == "agent-20261124T120005Z-0f3a"

    @pytest.mark.parametrize("nonce", ["0F3A", "0f3", "0f3a5", "zzzz", ""])
    def test_refuses_a_malformed_nonce(self, nonce: str) -> None:
        """Only four lowercase hex digits make a nonce (anything else would not parse back)."""
        with pytest.raises(ValueError, match="four lowercase hex"):
            key_name("agent", NOW, nonce)

    @given(
        managed=managed_names, moment=moments, nonce=st.from_regex(r"[0-9a-f]{4}", fullmatch=True)
    )
    def test_round_trips_with_a_nonce(self, managed: str, moment: datetime, nonce: str) -> None:
        """Parsing a name with a nonce gives back the managed name, the second and the nonce."""
        assert parse_key_name(key_name(managed, moment, nonce)) == ManagedName(
            managed, moment, nonce
        )

    @given(managed=managed_names, moment=moments, later=moments)
    def test_names_sort_by_creation_time(
        self, managed: str, moment: datetime, later: datetime
    ) -> None:
        """Names of one managed key sort in the order the keys were created."""
        first, second = sorted((moment, later))
        assert key_name(managed, first) <= key_name(managed, second)
        if first < second:  # a nonce never reorders keys of different seconds
            assert key_name(managed, first, "ffff") < key_name(managed, second, "0000")


class TestUniqueKeyName:
    """unique_key_name adds a per-process nonce and never returns a taken name."""

    def test_the_same_process_gets_the_same_name_for_the_same_moment(self) -> None:
        """One salt, one managed key, one second: one name (the planner asks more than once)."""
        salt = b"a" * 16
        assert unique_key_name("agent", NOW, (), salt=salt) == unique_key_name(
            "agent", NOW.replace(microsecond=5), (), salt=salt
        )

    def test_processes_with_other_salts_get_other_nonces(self) -> None:
        """Sixteen salts give (nearly) sixteen different nonces for the same second."""
        nonces = {name_nonce("agent", NOW, salt=bytes([n]) * 16) for n in range(16)}
        assert len(nonces) >= 14

    def test_skips_taken_names(self) -> None:
        """Every name in ``taken`` is passed over; the result stays in the same second."""
        salt = b"b" * 16
        taken = {key_name("agent", NOW, name_nonce("agent", NOW, n, salt=salt)) for n in range(5)}
        name = unique_key_name("agent", NOW, taken, salt=salt)
        assert name not in taken
        assert name.startswith("agent-20261124T120005Z-")

    def test_the_default_salt_is_this_processs(self) -> None:
        """Without a salt the nonce comes from this process's random salt."""
        parsed = parse_key_name(unique_key_name("agent", NOW, ()))
        assert parsed is not None
        assert parsed == ManagedName("agent", NOW, name_nonce("agent", NOW))


class TestParseKeyName:
    """parse_key_name accepts only names with a valid timestamp suffix."""

    def test_a_managed_name_that_prefixes_another_keeps_its_own_keys(self) -> None:
        """``agent-prod-<ts>`` parses as managed key ``agent-prod``, never as ``agent``."""
        parsed = parse_key_name("agent-prod-20261124T120005Z")
        assert parsed is not None
        assert parsed.managed == "agent-prod"

    def test_accepts_the_nonce_form(self) -> None:
        """``<managed>-<timestamp>-<4 hex>`` is a managed name with its nonce."""
        assert parse_key_name("agent-20261124T120005Z-beef") == ManagedName("agent", NOW, "beef")

    def test_both_forms_of_one_managed_key_belong_to_it(self) -> None:
        """Keys named with and without a nonce are both keys of the same managed key."""
        for name in ("agent-prod-20261124T120005Z", "agent-prod-20261124T120005Z-00aa"):
            owner = managed_owner(name, ["agent", "agent-prod"])
            assert owner is not None and owner.managed == "agent-prod"

    def test_a_managed_name_may_itself_end_in_digits(self) -> None:
        """A managed name with dashes and digits keeps them all before the suffix."""
        parsed = parse_key_name("cluster-2026-20261124T120005Z")
        assert parsed == ManagedName("cluster-2026", NOW)

    @pytest.mark.parametrize(
        "name",
        [
            "agent",
            "agent-",
            "-20261124T120005Z",
            "agent20261124T120005Z",
            "agent-20261124T120005",
            "agent-20261124t120005z",
            "agent-2026112T120005Z",
            "agent-202611241T120005Z",
            "agent-20261124T120005Z-old",
            "agent-20261124T120005Z-BEEF",
            "agent-20261124T120005Z-bee",
            "agent-20261124T120005Z-beef0",
            "agent-20261124T120005Z-",
            "agent-20261124T120005Z-beef-cafe",
            "agent-20261124 120005Z",
            "agent-20261324T120005Z",
            "agent-20260230T120005Z",
            "agent-20261124T250005Z",
            "agent-20261124T126005Z",
            # Devanagari digits: the regex's \d matches them, the parser must still refuse.
            "agent-\u0968\u0966\u0968\u096c\u0967\u0967\u0968\u096aT120005Z",
        ],
    )
    def test_rejects_malformed_suffixes(self, name: str) -> None:
        """A name without a well-formed, valid UTC timestamp suffix is not a managed name."""
        assert parse_key_name(name) is None


class TestManagedOwner:
    """managed_owner assigns a key name to exactly one configured managed key."""

    def test_finds_the_owner_among_prefixed_names(self) -> None:
        """With ``agent`` and ``agent-prod`` configured, each claims only its own keys."""
        names = ["agent", "agent-prod"]
        owner_of_prod = managed_owner("agent-prod-20261124T120005Z", names)
        owner_of_agent = managed_owner("agent-20261124T120005Z", names)
        assert owner_of_prod is not None
        assert owner_of_prod.managed == "agent-prod"
        assert owner_of_agent is not None
        assert owner_of_agent.managed == "agent"

    def test_a_shorter_managed_name_does_not_capture_a_longer_ones_keys(self) -> None:
        """Only ``agent`` configured: the keys of an unconfigured ``agent-prod`` are not ours."""
        assert managed_owner("agent-prod-20261124T120005Z", ["agent"]) is None

    def test_a_longer_managed_name_does_not_capture_a_shorter_ones_keys(self) -> None:
        """Only ``agent-prod`` configured: the keys of ``agent`` are not ours."""
        assert managed_owner("agent-20261124T120005Z", ["agent-prod"]) is None

    def test_ignores_names_that_are_not_managed(self) -> None:
        """A hand-made key name without a timestamp suffix has no owner."""
        assert managed_owner("agent", ["agent"]) is None


class TestManagedDescription:
    """managed_description marks the ingestion keys the rotator creates."""

    def test_appends_the_marker_to_the_users_text(self) -> None:
        """The user's description comes first, then the managed-by marker."""
        assert managed_description("prod agent") == f"prod agent {MANAGED_BY_MARKER}"

    @pytest.mark.parametrize("description", [None, ""])
    def test_is_the_marker_alone_without_a_description(self, description: str | None) -> None:
        """Without a description of its own the key is described by the marker only."""
        assert managed_description(description) == MANAGED_BY_MARKER

    def test_marker_names_the_rotator(self) -> None:
        """The marker says which tool manages the key."""
        assert MANAGED_BY_MARKER == "[managed-by: stackstate-key-rotator]"
