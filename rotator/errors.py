"""The one exception tree of the rotator, classified by what the caller should do next.

::

    RotatorError                      root; carries optional ``managed_key`` and ``target``
    ├── TemporaryError                retry later (``delay`` hints how long)
    ├── PermanentError                retrying the same call will not help
    │   └── NeedsHumanError           a person must act (credentials, permissions, policy)
    ├── ConfigError                   the configuration is invalid (exit code 2)
    ├── StackStateError               anything the StackState API said or failed to say
    │   ├── StackStateUnreachable     (Temporary) connection refused / DNS / TLS handshake
    │   ├── StackStateTimeout         (Temporary) no answer within the timeout
    │   ├── StackStateServerError     (Temporary) 5xx; ``tracking_key`` when the server gave one
    │   ├── StackStateUnauthorized    (NeedsHuman) 401: our credential is not accepted
    │   ├── StackStateForbidden       (NeedsHuman) 403: accepted but lacks permission
    │   ├── StackStateNotFound        (Permanent) 404
    │   ├── StackStateInvalidExpiry   (Permanent) 400 ``*InvalidExpiryError``
    │   ├── StackStateBadRequest      (Permanent) any other 4xx
    │   ├── StackStateProtocolError   (Permanent) an answer that does not match the API contract
    │   └── AmbiguousCreateError      (Temporary) a create whose outcome could not be settled
    ├── TargetError                   a target (Secret, Vault path, file) could not be read/written
    │   ├── TargetUnavailable         (Temporary) unreachable, timeout, 5xx, Vault sealed
    │   ├── TargetConflict            (Temporary) concurrent writer won every retry (409, CAS)
    │   ├── TargetForbidden           (NeedsHuman) 401/403: credentials or policy
    │   └── TargetInvalid             (Permanent) bad location, unparsable content, refused path
    ├── ConsumerError                 a workload or synced Secret could not be read or restarted
    │   ├── ConsumerUnavailable       (Temporary) as TargetUnavailable
    │   ├── ConsumerConflict          (Temporary) as TargetConflict
    │   ├── ConsumerForbidden         (NeedsHuman) as TargetForbidden
    │   └── ConsumerInvalid           (Permanent) as TargetInvalid
    └── LeaseError                    the leader-election Lease could not be read/written
        ├── LeaseUnavailable          (Temporary) as TargetUnavailable
        ├── LeaseConflict             (Temporary) a concurrent writer won (409)
        ├── LeaseForbidden            (NeedsHuman) as TargetForbidden
        └── LeaseInvalid              (Permanent) as TargetInvalid

The three families have the same four kinds with the same categories, so a failure of a
consumer or of the Lease is the same data as a target's (``category``; ``error_type`` names the
family). :class:`ErrorKinds` lets one translation (e.g. of Kubernetes API answers) produce the
family of whoever made the call.

Lower libraries' errors (httpx, hvac, kubernetes) are translated into this tree exactly once, in
the client that made the call (``rotator.clients.kubernetes.map_api_error``,
``rotator.clients.vault.map_error``, the StackState client's own). Messages never contain a key
value or a request body.

Each class also says, in :attr:`RotatorError.category`, what a person should do next; run reports,
metrics and alerts take it from there (never from message text)::

    retry ............ TemporaryError and below (it will be tried again)
    fix-config ....... ConfigError, Target/Consumer/LeaseInvalid, StackStateInvalidExpiry,
                       StackStateNotFound, StackStateBadRequest
    fix-permissions .. Target/Consumer/LeaseForbidden, StackStateUnauthorized,
                       StackStateForbidden
    human ............ every other PermanentError (a decision is needed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What a person should do about a failure (``failure.category`` of the JSON output).
Category = Literal["retry", "fix-config", "fix-permissions", "wait", "human"]


class RotatorError(Exception):
    """Root of every error the rotator raises on purpose."""

    #: Whether running the same step again later may succeed.
    retryable: bool = False
    #: What to do next; subclasses narrow it.
    category: Category = "human"

    def __init__(
        self,
        message: str,
        *,
        managed_key: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.managed_key = managed_key
        self.target = target

    def __str__(self) -> str:
        parts = []
        if self.managed_key:
            parts.append(f"key {self.managed_key}")
        if self.target:
            parts.append(f"target {self.target}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class TemporaryError(RotatorError):
    """The step may succeed if tried again later."""

    retryable = True
    category: Category = "retry"

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        managed_key: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message, managed_key=managed_key, target=target)
        self.delay = delay


class PermanentError(RotatorError):
    """Trying the same step again will not help without a change somewhere."""


class NeedsHumanError(PermanentError):
    """A person must act: a credential, a permission or a policy is wrong."""


class ConfigError(RotatorError):
    """The configuration is invalid; the message is a readable block naming file and fields."""

    category: Category = "fix-config"


class StackStateError(RotatorError):
    """Base for every failure of a StackState API call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        managed_key: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message, managed_key=managed_key, target=target)
        self.status = status


class StackStateUnreachable(StackStateError, TemporaryError):
    """The server could not be reached (connection refused, DNS, TLS handshake)."""


class StackStateTimeout(StackStateError, TemporaryError):
    """The server did not answer within the configured timeout."""


class StackStateServerError(StackStateError, TemporaryError):
    """The server answered 5xx."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        tracking_key: str | None = None,
        managed_key: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message, status=status, managed_key=managed_key, target=target)
        self.tracking_key = tracking_key


class StackStateUnauthorized(StackStateError, NeedsHumanError):
    """401: the credential the rotator authenticates with is not accepted."""

    category: Category = "fix-permissions"


class StackStateForbidden(StackStateError, NeedsHumanError):
    """403: the credential is accepted but lacks the permission."""

    category: Category = "fix-permissions"


class StackStateNotFound(StackStateError, PermanentError):
    """404: the key or path does not exist."""

    category: Category = "fix-config"


class StackStateInvalidExpiry(StackStateError, PermanentError):
    """400 with ``_type: *InvalidExpiryError``: the requested expiry was refused."""

    category: Category = "fix-config"


class StackStateBadRequest(StackStateError, PermanentError):
    """Any other 4xx answer."""

    category: Category = "fix-config"


class StackStateProtocolError(StackStateError, PermanentError):
    """The server's answer does not match the API contract (bad JSON, missing fields)."""


class AmbiguousCreateError(StackStateError, TemporaryError):
    """A create whose outcome could not be settled by listing; nothing was created twice."""


class TargetError(RotatorError):
    """Base for failures reading or writing a target."""


class TargetUnavailable(TargetError, TemporaryError):
    """The target's backend is unreachable, timed out, answered 5xx, or Vault is sealed."""


class TargetConflict(TargetError, TemporaryError):
    """A concurrent writer won every retry (Kubernetes 409, Vault check-and-set mismatch)."""


class TargetForbidden(TargetError, NeedsHumanError):
    """The backend refused our credentials or policy (401/403)."""

    category: Category = "fix-permissions"


class TargetInvalid(TargetError, PermanentError):
    """The location is wrong or its content cannot be parsed or safely written."""

    category: Category = "fix-config"


class ConsumerError(RotatorError):
    """Base for failures reading or triggering a consumer (a workload, a synced Secret)."""


class ConsumerUnavailable(ConsumerError, TemporaryError):
    """The consumer's backend is unreachable, timed out or answered 5xx/429."""


class ConsumerConflict(ConsumerError, TemporaryError):
    """A concurrent writer won every retry of a consumer's write (Kubernetes 409)."""


class ConsumerForbidden(ConsumerError, NeedsHumanError):
    """The backend refused our credentials or RBAC (401/403) for a consumer's call."""

    category: Category = "fix-permissions"


class ConsumerInvalid(ConsumerError, PermanentError):
    """The consumer's location is wrong, or the backend's answer cannot be used."""

    category: Category = "fix-config"


class LeaseError(RotatorError):
    """Base for failures reading or writing the leader-election Lease."""


class LeaseUnavailable(LeaseError, TemporaryError):
    """The API server is unreachable, timed out or answered 5xx/429 for the Lease."""


class LeaseConflict(LeaseError, TemporaryError):
    """A concurrent writer changed the Lease first (409): the round (or write) is lost."""


class LeaseForbidden(LeaseError, NeedsHumanError):
    """The API server refused our credentials or RBAC (401/403) for the Lease."""

    category: Category = "fix-permissions"


class LeaseInvalid(LeaseError, PermanentError):
    """The Lease cannot be written where configured (no such namespace, a refused record)."""

    category: Category = "fix-config"


@dataclass(frozen=True)
class ErrorKinds:
    """The four kinds of one family (target, consumer, Lease), for a shared translation."""

    unavailable: type[TemporaryError]
    conflict: type[TemporaryError]
    forbidden: type[NeedsHumanError]
    invalid: type[PermanentError]


#: Errors of a target's own calls.
TARGET_ERRORS = ErrorKinds(TargetUnavailable, TargetConflict, TargetForbidden, TargetInvalid)
#: Errors of a consumer's own calls.
CONSUMER_ERRORS = ErrorKinds(
    ConsumerUnavailable, ConsumerConflict, ConsumerForbidden, ConsumerInvalid
)
#: Errors of the leader-election Lease's calls.
LEASE_ERRORS = ErrorKinds(LeaseUnavailable, LeaseConflict, LeaseForbidden, LeaseInvalid)
