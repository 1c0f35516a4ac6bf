"""The StackState API client: list, create, delete and verify both key kinds over httpx.

Two key kinds live behind the same small surface (:class:`~rotator.keytypes.KeyKind`):

* ``service-token`` — ``/security/tokens``; carries roles; the create answer holds no id, so the
  id is found by listing and matching the (unique) name;
* ``ingestion-api-key`` — ``/security/ingestion/api_keys``; deprecated but still deployed.

The modules, each with the rules it keeps in its docstring:

- :mod:`~rotator.clients.stackstate.client` — :class:`StackStateClient`: the calls, and how a
  create whose outcome is unknown is settled by name, never by creating blindly again (I6);
- :mod:`~rotator.clients.stackstate.transport` — connection, the one credential header, a
  timeout on every call, retries with backoff and full jitter, ``Retry-After``;
- :mod:`~rotator.clients.stackstate.errors` — :func:`map_error`, the one place where httpx
  failures and HTTP statuses become :mod:`rotator.errors` (messages never hold a key value);
- :mod:`~rotator.clients.stackstate.api` — paths, timestamps, request bodies, parsed answers.

The key value types (:class:`ApiKey`, :class:`CreatedKey`, :class:`PendingKey`,
:class:`VerifyResult`, :class:`KeyKind`) live in :mod:`rotator.keytypes`, shared with the
engine's ports and the configuration; they are re-exported here.
"""

from rotator.clients.stackstate.api import (
    INGEST_PERMISSION,
    ServerInfo,
    from_epoch_ms,
    to_epoch_ms,
)
from rotator.clients.stackstate.client import StackStateClient
from rotator.clients.stackstate.errors import map_error, parse_retry_after
from rotator.clients.stackstate.transport import (
    DEFAULT_API_PATH,
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_AFTER_MAX,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    StackStateTransport,
)
from rotator.keytypes import (
    KEY_KINDS,
    ApiKey,
    CreatedKey,
    KeyKind,
    PendingKey,
    VerifyResult,
)

__all__ = [
    "DEFAULT_API_PATH",
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RETRY_AFTER_MAX",
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_TIMEOUT",
    "INGEST_PERMISSION",
    "KEY_KINDS",
    "ApiKey",
    "CreatedKey",
    "KeyKind",
    "PendingKey",
    "ServerInfo",
    "StackStateClient",
    "StackStateTransport",
    "VerifyResult",
    "from_epoch_ms",
    "map_error",
    "parse_retry_after",
    "to_epoch_ms",
]
