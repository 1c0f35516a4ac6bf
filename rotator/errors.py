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
    └── TargetError                   a target (Secret, Vault path, file) could not be read/written
        ├── TargetUnavailable         (Temporary) unreachable, timeout, 5xx, Vault sealed
        ├── TargetConflict            (Temporary) concurrent writer won every retry (409, CAS)
        ├── TargetForbidden           (NeedsHuman) 401/403: credentials or policy
        └── TargetInvalid             (Permanent) bad location, unparsable content, refused path

Lower libraries' errors (httpx, hvac, kubernetes) are translated into this tree exactly once, in
the adapter that called them. Messages never contain a key value or a request body.

Each class also says, in :attr:`RotatorError.category`, what a person should do next; run reports,
metrics and alerts take it from there (never from message text)::

    retry ............ TemporaryError and below (it will be tried again)
    fix-config ....... ConfigError, TargetInvalid, StackStateInvalidExpiry, StackStateNotFound,
                       StackStateBadRequest
    fix-permissions .. TargetForbidden, StackStateUnauthorized, StackStateForbidden
    human ............ every other PermanentError (a decision is needed)
"""

from __future__ import annotations

from typing import Literal

#: What a person should do about a failure (``failure.category`` in ``../shared/CLI.md``).
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
