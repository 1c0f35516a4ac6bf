"""What the engine needs from the outside world, as Protocols and plain values.

The engine (observe, plan, apply) depends on this module, never on a concrete client: the
StackState client (:class:`rotator.clients.stackstate.StackStateClient`) satisfies
:class:`KeyStore`, the adapters of ``rotator/targets`` and ``rotator/consumers`` satisfy
:class:`Target` and :class:`Consumer`, and :mod:`rotator.wiring` hands the engine those objects.
A test can give the engine anything with the same methods.

- :class:`KeyStore` — the StackState calls the engine makes: one list per kind, creates (sent
  one by one, their ids learnt with one list per kind), verify, delete;
- :class:`Target` / :class:`TargetState` / :class:`KeyMetadata` — where a value is written and
  the record kept beside it (defined in :mod:`rotator.targets.base`);
- :class:`Consumer` and its results — what reads a value and must switch over (defined in
  :mod:`rotator.consumers.base`);
- the key value types :class:`KeyKind`, :class:`ApiKey`, :class:`CreatedKey`,
  :class:`PendingKey`, :class:`VerifyResult` (defined in :mod:`rotator.keytypes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from rotator.consumers.base import Consumer, Reader, Resolution, SwitchState
from rotator.errors import RotatorError
from rotator.keytypes import KEY_KINDS, ApiKey, CreatedKey, KeyKind, PendingKey, VerifyResult
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, Target, TargetState

__all__ = [
    "KEY_KINDS",
    "ApiKey",
    "Consumer",
    "CreatedKey",
    "KeyKind",
    "KeyMetadata",
    "KeyStore",
    "PendingKey",
    "Reader",
    "Resolution",
    "SwitchState",
    "Target",
    "TargetState",
    "VerifyResult",
]


class KeyStore(Protocol):
    """The StackState key API as the engine uses it.

    Every method raises a :class:`~rotator.errors.RotatorError` subclass (whose category says
    what to do next) for a failure, never a library's exception, and never puts a key value in
    a message.
    """

    def list_keys(self, kind: KeyKind) -> list[ApiKey]:
        """Every key of ``kind``, metadata only (values are never listed)."""
        ...

    def start_create(
        self,
        kind: KeyKind,
        name: str,
        *,
        expiration: datetime | None,
        roles: Sequence[str] | None = None,
        description: str | None = None,
        dedicated_subject: str | None = None,
    ) -> PendingKey:
        """Create a key named ``name`` (unique); its id is learnt by :meth:`finish_creates`.

        An outcome the store cannot settle raises (the create is never repeated blindly).
        """
        ...

    def finish_creates(self, pending: Sequence[PendingKey]) -> list[CreatedKey | RotatorError]:
        """The created keys with their ids, in order, learnt with one list per kind; a key whose
        id cannot be known is its error instead (nothing is raised for one key)."""
        ...

    def verify(
        self, kind: KeyKind, value: Secret, *, with_receiver_key: bool = False
    ) -> VerifyResult:
        """Whether StackState accepts ``value`` for ingestion (read-only)."""
        ...

    def delete_key(self, kind: KeyKind, key_id: int, *, missing_ok: bool = False) -> None:
        """Delete a key; a missing key is an error unless ``missing_ok``."""
        ...
