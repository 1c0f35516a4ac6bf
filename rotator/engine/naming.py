"""Names of the StackState keys the rotator creates: ``<managed name>-<YYYYMMDDTHHMMSSZ>``.

The name pattern is what marks a key as managed (service tokens have no description field), so
parsing is strict: the suffix must be a valid UTC timestamp in exactly this form. Because the
suffix has a fixed shape, a managed name that is a prefix of another (``agent`` and
``agent-prod``) never captures the other's keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<stamp>\d{8}T\d{6}Z)$")

#: Written into the description of ingestion API keys the rotator creates.
MANAGED_BY_MARKER = "[managed-by: stackstate-key-rotator]"


@dataclass(frozen=True)
class ManagedName:
    """A parsed managed key name."""

    managed: str
    created_at: datetime


def key_name(managed: str, now: datetime) -> str:
    """The StackState key name for a key of ``managed`` created at ``now`` (UTC, seconds)."""
    return f"{managed}-{now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)}"


def parse_key_name(name: str) -> ManagedName | None:
    """Split ``<managed>-<timestamp>``; None when the name does not have that shape."""
    match = _SUFFIX.match(name)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match["stamp"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return ManagedName(managed=match["base"], created_at=stamp)


def managed_owner(name: str, managed_names: Iterable[str]) -> ManagedName | None:
    """The parsed name when it belongs to one of ``managed_names``, else None."""
    parsed = parse_key_name(name)
    if parsed is None or parsed.managed not in set(managed_names):
        return None
    return parsed


def managed_description(description: str | None) -> str:
    """The description of an ingestion key the rotator creates: the user's text plus the marker."""
    return f"{description} {MANAGED_BY_MARKER}" if description else MANAGED_BY_MARKER
