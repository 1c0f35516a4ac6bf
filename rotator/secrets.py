"""Key values in memory: a wrapper that never prints itself, and the registry the log redactor uses.

A :class:`Secret` holds a key value the rotator obtained (a created key, a value read from a
target, a credential from the configuration). Its ``repr``/``str`` are masked, so a value that
slips into a log event, an exception message or plan output shows as ``**********``. Every
Secret is also registered in a process-wide set that :class:`rotator.logging.RedactSecrets`
consults as defence in depth, masking a registered value wherever it appears in an event.

:func:`fingerprint` identifies a value across targets without revealing it: an HMAC-SHA256 keyed
with a fixed, public context string, truncated. It is a stable identifier, not a password hash:
key values are long random strings, so a fingerprint does not help guess them.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Final

MASK: Final = "**********"

#: Values shorter than this are not redacted by substring (too many false positives, e.g. "1").
MIN_REDACTABLE_LENGTH: Final = 6

_FINGERPRINT_CONTEXT: Final = b"stackstate-key-rotator/fingerprint/v1"

_registry_lock = threading.Lock()
_registry: set[str] = set()


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
    if len(value) >= MIN_REDACTABLE_LENGTH:
        with _registry_lock:
            _registry.add(value)


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


def reset_registry() -> None:
    """Forget every registered value (tests)."""
    with _registry_lock:
        _registry.clear()
