"""Names of the StackState keys the rotator creates:
``<managed name>-<YYYYMMDDTHHMMSSZ>-<4 lowercase hex>``.

The name pattern is what marks a key as managed (service tokens have no description field), so
parsing is strict: the suffix must be a valid UTC timestamp in exactly this form, optionally
followed by a dash and four lowercase hex digits (the *nonce*). Names without the nonce, which
earlier versions created, stay managed names. Because the suffix has a fixed shape, a managed
name that is a prefix of another (``agent`` and ``agent-prod``) never captures the other's keys.

Why the nonce (invariants I1, I2): a service-token create answers no id, so the client finds
the new key by listing its name. Two rotators creating a key of one managed key in the same
second (two hosts running ``rotate --force`` at once) used to pick the same name; each lookup
then saw two keys, and one run deleted both while the other had pushed one of them. A nonce
drawn from a per-process random salt makes names of different processes differ (a clash needs
the same second and the same 16 bits), while one process naming the same key twice for the same
moment (the planner does: the action text and the plan) gets the same name both times.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<nonce>[0-9a-f]{4}))?$")

#: Hex digits of the nonce: ``secrets.token_hex(2)``-sized, 65536 values per second.
NONCE_HEX_DIGITS: Final = 4

#: This process's random salt for nonces (``secrets``, so other processes cannot predict it).
PROCESS_SALT: Final = secrets.token_bytes(16)

#: Nonces tried for one second before the name moves on to the next second.
_NONCES_PER_SECOND: Final = 64

#: Written into the description of ingestion API keys the rotator creates.
MANAGED_BY_MARKER = "[managed-by: stackstate-key-rotator]"


@dataclass(frozen=True)
class ManagedName:
    """A parsed managed key name; ``nonce`` is None for names without the random part."""

    managed: str
    created_at: datetime
    nonce: str | None = None


def key_name(managed: str, now: datetime, nonce: str | None = None) -> str:
    """The StackState key name for a key of ``managed`` created at ``now`` (UTC, seconds),
    followed by ``-<nonce>`` when one is given (four lowercase hex digits)."""
    if nonce is not None and not re.fullmatch(r"[0-9a-f]{4}", nonce):
        raise ValueError("a key name nonce is four lowercase hex digits")
    stamp = now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    return f"{managed}-{stamp}" if nonce is None else f"{managed}-{stamp}-{nonce}"


def name_nonce(managed: str, now: datetime, attempt: int = 0, *, salt: bytes = PROCESS_SALT) -> str:
    """Four lowercase hex digits for a key of ``managed`` named at ``now`` (to the second).

    A keyed hash of the inputs under ``salt``: the same within one process, unpredictable and
    independent across processes (each draws its own :data:`PROCESS_SALT`). ``attempt`` picks
    another nonce when the first one is taken.
    """
    second = now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    digest = hashlib.blake2s(
        f"{managed}\0{second}\0{attempt}".encode(), key=salt, digest_size=NONCE_HEX_DIGITS // 2
    )
    return digest.hexdigest()


def unique_key_name(
    managed: str, now: datetime, taken: Collection[str], *, salt: bytes = PROCESS_SALT
) -> str:
    """``<managed>-<timestamp>-<nonce>`` for ``now`` that no name in ``taken`` has.

    Another nonce is tried when the name is taken; after :data:`_NONCES_PER_SECOND` of them
    the timestamp moves on by a second (never reached in practice).
    """
    moment = now
    while True:
        for attempt in range(_NONCES_PER_SECOND):
            name = key_name(managed, moment, name_nonce(managed, moment, attempt, salt=salt))
            if name not in taken:
                return name
        moment += timedelta(seconds=1)


def parse_key_name(name: str) -> ManagedName | None:
    """Split ``<managed>-<timestamp>[-<nonce>]``; None when the name does not have that shape."""
    match = _SUFFIX.match(name)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match["stamp"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return ManagedName(managed=match["base"], created_at=stamp, nonce=match["nonce"])


def managed_owner(name: str, managed_names: Iterable[str]) -> ManagedName | None:
    """The parsed name when it belongs to one of ``managed_names``, else None."""
    parsed = parse_key_name(name)
    if parsed is None or parsed.managed not in set(managed_names):
        return None
    return parsed


def managed_description(description: str | None) -> str:
    """The description of an ingestion key the rotator creates: the user's text plus the marker."""
    return f"{description} {MANAGED_BY_MARKER}" if description else MANAGED_BY_MARKER
