"""A kind's listing indexed once per run (engine.listing): lookups by id, name, managed name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.engine.listing import KeyListing
from rotator.engine.naming import key_name, parse_key_name
from rotator.engine.ports import ApiKey

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def key(key_id: int, name: str) -> ApiKey:
    """A listed service token."""
    return ApiKey("service-token", key_id, name, None, None, ("r",), NOW)


AGENT_OLD = key(1, key_name("agent", NOW - timedelta(days=80), "00aa"))
AGENT_NEW = key(2, key_name("agent", NOW - timedelta(days=10), "00bb"))
AGENT_PROD = key(3, key_name("agent-prod", NOW - timedelta(days=5), "00cc"))
HAND_MADE = key(4, "agent-by-hand")
LEGACY = key(5, key_name("agent", NOW - timedelta(days=200)))  # no nonce: still managed


class TestKeyListing:
    """Each index answers what a scan of the whole listing would."""

    def test_is_a_mapping_by_id(self) -> None:
        """Lookups by id, iteration and length are those of the listing."""
        listing = KeyListing([AGENT_OLD, AGENT_NEW, HAND_MADE])
        assert listing[2] is AGENT_NEW
        assert 4 in listing and 9 not in listing
        assert sorted(listing) == [1, 2, 4]
        assert len(listing) == 3
        assert dict(listing) == {1: AGENT_OLD, 2: AGENT_NEW, 4: HAND_MADE}

    def test_names_are_every_listed_name(self) -> None:
        """A new key's name is checked against every name, managed or not."""
        listing = KeyListing([AGENT_OLD, HAND_MADE])
        assert listing.names == {AGENT_OLD.name, "agent-by-hand"}

    def test_managed_by_finds_a_keys_own_keys_only(self) -> None:
        """``agent`` gets its keys (with and without nonce), sorted by name; never the keys of
        ``agent-prod`` (a longer managed name) nor a hand-made key that merely shares a prefix."""
        listing = KeyListing([AGENT_PROD, AGENT_NEW, HAND_MADE, LEGACY, AGENT_OLD])
        found = listing.managed_by("agent")
        assert [k.id for k, _ in found] == [5, 1, 2]
        assert all(parsed == parse_key_name(k.name) for k, parsed in found)
        assert [k.id for k, _ in listing.managed_by("agent-prod")] == [3]
        assert listing.managed_by("agent-by") == ()
        assert listing.managed_by("unknown") == ()

    def test_of_keeps_an_indexed_listing_and_indexes_a_plain_mapping(self) -> None:
        """A listing is passed through (its indexes are built once); a dict gets indexed."""
        listing = KeyListing([AGENT_OLD])
        assert KeyListing.of(listing) is listing
        wrapped = KeyListing.of({1: AGENT_OLD, 3: AGENT_PROD})
        assert isinstance(wrapped, KeyListing)
        assert [k.id for k, _ in wrapped.managed_by("agent-prod")] == [3]
