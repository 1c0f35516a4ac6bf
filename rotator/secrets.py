"""Key values in memory: a wrapper that never prints itself, and the registry the log redactor uses.

A :class:`Secret` holds a key value the rotator obtained (a created key, a value read from a
target, a credential from the configuration). Its ``repr``/``str`` are masked, so a value that
slips into a log event, an exception message or plan output shows as ``**********``. Every
Secret is also registered in a process-wide set that :class:`rotator.logs.RedactSecrets`
consults as defence in depth, masking a registered value wherever it appears in an event.

:func:`mask_fragments` goes further for text the rotator does not control (the output of a
``command`` consumer or alert hook): any run of :data:`FRAGMENT_LENGTH` or more characters that
also occurs in a registered value is masked, so a child printing a prefix of a key (or a key cut
by a line limit) leaks nothing recognisable.

:func:`fingerprint` identifies a value across targets without revealing it: an HMAC-SHA256 keyed
with a fixed, public context string, truncated. It is a stable identifier, not a password hash:
key values are long random strings, so a fingerprint does not help guess them.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterable
from typing import Final

MASK: Final = "**********"

#: Values shorter than this are not redacted by substring (too many false positives, e.g. "1").
MIN_REDACTABLE_LENGTH: Final = 6

_FINGERPRINT_CONTEXT: Final = b"stackstate-key-rotator/fingerprint/v1"

#: :func:`mask_fragments` masks every run of at least this many characters of a secret. Eight
#: characters of a random key are already worth hiding; fewer would mask ordinary words.
FRAGMENT_LENGTH: Final = 8

_registry_lock = threading.Lock()
_registry: set[str] = set()
#: Bumped on every change of the registry, so the fragment index knows when to rebuild.
_generation = 0
#: (generation it was built for, every FRAGMENT_LENGTH-gram of every registered value).
_fragment_index: tuple[int, frozenset[str]] = (-1, frozenset())


class Secret:
    """A secret string that does not reveal itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """Return the value: call only where it is sent to an API or written to a target."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """The value's fingerprint (see :func:`fingerprint`)."""
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")


def fingerprint(value: str) -> str:
    """A short, stable, non-reversible identifier of a key value: ``sha256:<16 hex>``."""
    digest = hmac.new(_FINGERPRINT_CONTEXT, value.encode(), hashlib.sha256).hexdigest()
    return f"sha256:{digest[:16]}"


def register_secret(value: str) -> None:
    """Remember a value so the log redactor masks it wherever it appears."""
    global _generation  # noqa: PLW0603 - the registry is this module's one piece of state
    if len(value) >= MIN_REDACTABLE_LENGTH:
        with _registry_lock:
            if value not in _registry:
                _registry.add(value)
                _generation += 1


def registered_secrets() -> frozenset[str]:
    """Every value registered so far (for the redactor)."""
    with _registry_lock:
        return frozenset(_registry)


def redact(text: str) -> str:
    """Replace every registered secret value inside ``text`` by the mask."""
    secrets_now = registered_secrets()
    if not secrets_now:
        return text
    # Longest first, so a value containing another is masked whole.
    for value in sorted(secrets_now, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def _fragments(values: Iterable[str]) -> set[str]:
    """Every substring of :data:`FRAGMENT_LENGTH` characters of every value."""
    size = FRAGMENT_LENGTH
    return {value[i : i + size] for value in values for i in range(len(value) - size + 1)}


def _registered_fragments() -> frozenset[str]:
    """The fragment index of the registry, rebuilt only when the registry changed."""
    global _fragment_index  # noqa: PLW0603 - a cache of the registry, reset with it
    with _registry_lock:
        generation, index = _fragment_index
        if generation != _generation:
            index = frozenset(_fragments(_registry))
            _fragment_index = (_generation, index)
        return index


def mask_fragments(text: str, extra: Iterable[str] = ()) -> str:
    """Mask every run of :data:`FRAGMENT_LENGTH`+ characters of a registered value (or of a
    value in ``extra``) inside ``text``; each masked run becomes one :data:`MASK`.

    Whole values are masked first (:func:`redact`). The scan is linear in ``text``: each
    window of FRAGMENT_LENGTH characters is looked up in a set of every such substring of
    the secrets, and a longer run of a secret is a chain of overlapping windows.
    """
    text = redact(text)
    for value in extra:
        if value:
            text = text.replace(value, MASK)
    size = FRAGMENT_LENGTH
    if len(text) < size:
        return text
    index = _registered_fragments()
    more = _fragments(v for v in extra if v)
    if not index and not more:
        return text
    hidden = bytearray(len(text))
    covered = 0  # every position before this one is already marked: keeps the scan linear
    for start in range(len(text) - size + 1):
        window = text[start : start + size]
        if window in index or window in more:
            first = max(start, covered)
            hidden[first : start + size] = b"\x01" * (start + size - first)
            covered = start + size
    if not any(hidden):
        return text
    out: list[str] = []
    position = 0
    while position < len(text):
        if hidden[position]:
            end = position
            while end < len(text) and hidden[end]:
                end += 1
            out.append(MASK)
            position = end
        else:
            end = hidden.find(1, position)
            end = len(text) if end < 0 else end
            out.append(text[position:end])
            position = end
    return "".join(out)


def reset_registry() -> None:
    """Forget every registered value (tests)."""
    global _generation  # noqa: PLW0603 - see register_secret
    with _registry_lock:
        _registry.clear()
        _generation += 1
