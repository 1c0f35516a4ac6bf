"""The value types of StackState keys, shared by the configuration, the engine and the client.

One :class:`KeyKind` serves every layer: the configuration's ``kind:`` field, the engine's
:class:`~rotator.engine.model.KeySpec` and the StackState client's calls. :class:`ApiKey`,
:class:`CreatedKey`, :class:`PendingKey` and :class:`VerifyResult` are what the client answers
and what the engine reasons about (through :mod:`rotator.engine.ports`). This module imports
nothing of the layers that use it, so each can import it without importing another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from rotator.secrets import Secret


class KeyKind(StrEnum):
    """The two kinds of StackState keys."""

    # Each member equals its string ("service-token"), so JSON, logs and messages show the value.
    # service-token: /security/tokens, carries roles; ingestion-api-key:
    # /security/ingestion/api_keys, deprecated but still deployed. (The docstring above is the
    # configuration reference's text for `kind`: docs/configuration.md is generated from it.)
    SERVICE_TOKEN = "service-token"  # noqa: S105 - a key kind, not a password
    INGESTION_API_KEY = "ingestion-api-key"


#: Every key kind, in a stable order.
KEY_KINDS: Final[tuple[KeyKind, ...]] = tuple(KeyKind)


@dataclass(frozen=True)
class ApiKey:
    """A StackState key as listed: metadata only, StackState never lists values."""

    kind: KeyKind
    id: int
    name: str
    description: str | None
    #: Aware UTC; None when the key never expires.
    expiration: datetime | None
    #: The roles of a service token; None for ingestion API keys.
    roles: tuple[str, ...] | None
    last_updated: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    """A key just created, with its value (shown by StackState this one time only)."""

    key: ApiKey
    value: Secret


@dataclass(frozen=True)
class PendingKey:
    """A key StackState created (the create answered), before its id is known: a service-token
    create answers no id. The key store's ``finish_creates`` settles it by its name."""

    kind: KeyKind
    name: str
    value: Secret
    #: The create's operation text, for messages (``create service-token key <name>``).
    operation: str
    #: The key as an ingestion create answers it (None for service tokens).
    key: ApiKey | None = None


@dataclass(frozen=True)
class VerifyResult:
    """Whether StackState accepts a key value for ingestion, and why (never the value)."""

    accepted: bool
    #: e.g. ``accepted``, ``not accepted (401)``, ``lacks permission update-metrics (403)``.
    reason: str
    #: The HTTP status StackState answered, None when no request was needed.
    status: int | None = None
