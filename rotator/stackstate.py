"""The StackState API client: list, create, delete and verify both key kinds over httpx.

Two key kinds live behind the same small surface (:data:`KeyKind`):

* ``service-token`` — ``/security/tokens``; carries roles; the create answer holds no id, so the
  id is found by listing and matching the (unique) name;
* ``ingestion-api-key`` — ``/security/ingestion/api_keys``; deprecated but still deployed.

Every call has a timeout. Failures are translated in exactly one place, :func:`map_error`, into
the :mod:`rotator.errors` tree::

    httpx.ConnectError, ReadError, WriteError, CloseError,
      RemoteProtocolError, ProxyError ..................... StackStateUnreachable
    httpx.TimeoutException (connect/read/write/pool) ...... StackStateTimeout
    401 ................................................... StackStateUnauthorized
    403 ................................................... StackStateForbidden
    404 ................................................... StackStateNotFound
    400 with ``_type`` ``*InvalidExpiryError`` ............ StackStateInvalidExpiry
    other 4xx ............................................. StackStateBadRequest
    429, 5xx .............................................. StackStateServerError (tracking key)
    3xx, unexpected 2xx, bad JSON, missing fields,
      LocalProtocolError, DecodingError, TooManyRedirects . StackStateProtocolError
    httpx.InvalidURL, UnsupportedProtocol ................. ConfigError

Messages name the operation and what went wrong (``list service-token keys: server error 503
(tracking key abc)``). They never hold a key value, a request body or a response body: error
bodies are read only for their ``_type`` and ``trackingKey``, and only when those look like
identifiers.

Retries (invariant I6). Reads, deletes and the read-only ``authorize`` POST are retried with
exponential backoff and full jitter (tenacity), bounded by attempts and by total time, on
connection errors, timeouts and 5xx. A DELETE answered 404 after an earlier attempt of the same
call may have reached the server counts as success: that earlier attempt deleted the key.

A ``Retry-After`` on a 429 or 503 (seconds or an HTTP-date) is honoured: the next attempt waits
at least that long. A server that asks for more than the call may still wait (the smaller of
``retry_after_max`` and what is left of ``retry_deadline``) is not retried at all: the call
gives up at once with :class:`~rotator.errors.StackStateServerError` (category ``retry``,
``delay`` = the requested wait) whose message names the delay, and the next run tries again.

A create is never retried blindly. When its outcome is unknown (timeout or connection lost after
sending, 5xx, or a 2xx whose body cannot be read: truncated JSON, a proxy's HTML page, a missing
value), the client lists the keys of that kind and looks for the create's unique name:

* one key with that name exists — it was created, but its value is lost: the client deletes it
  and raises the original error class (temporary) with a message saying so;
* several keys carry the name — the lookup is ambiguous: nobody can tell which one this create
  made, and another rotator may have pushed the other (names carry a random nonce, so this takes
  a clash or a hand-made key). Nothing is deleted (I1, I2) and
  :class:`~rotator.errors.AmbiguousCreateError` (temporary) is raised; the sweep later deletes
  those that no target references;
* none exists after an answer (5xx, an unreadable 2xx) — the server finished with the request
  and made nothing: the create is tried again with the same name (bounded);
* none exists after *no* answer (a read timeout, a connection dropped after sending) — the
  server may still be working on it, so "not listed yet" proves nothing: nothing is created
  again (that could make a second key, I6) and :class:`~rotator.errors.AmbiguousCreateError`
  (temporary) is raised; the next run rotates under a new name and a late key is swept once it
  is ``orphan_min_age`` old;
* the listing or the clean-up fails — :class:`~rotator.errors.AmbiguousCreateError` (temporary);
  a key with that name may exist without a known value, and the next run's sweep deletes it.

A create that could not have reached the server (connection refused, TLS failure, 429) is
simply tried again. After a successful service-token create the id is found by listing; when no
key or several keys carry the name, nobody can tell which holds the new value: the value is
discarded, nothing is deleted, and :class:`~rotator.errors.AmbiguousCreateError` is raised. An
ingestion create answers its id; other keys listed under its name are left alone as well.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, NoReturn, Protocol, Self, TypeVar, get_args
from urllib.parse import urlsplit

import httpx
import structlog
import tenacity
from pydantic import SecretStr

from rotator import __version__
from rotator.errors import (
    AmbiguousCreateError,
    ConfigError,
    RotatorError,
    StackStateBadRequest,
    StackStateError,
    StackStateForbidden,
    StackStateInvalidExpiry,
    StackStateNotFound,
    StackStateProtocolError,
    StackStateServerError,
    StackStateTimeout,
    StackStateUnauthorized,
    StackStateUnreachable,
)
from rotator.secrets import Secret, redact

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

KeyKind = Literal["service-token", "ingestion-api-key"]
#: Every key kind, in a stable order.
KEY_KINDS: Final[tuple[KeyKind, ...]] = get_args(KeyKind)

#: The API base path StackState serves under unless configured otherwise.
DEFAULT_API_PATH: Final = "/api"
#: Seconds for each of connect, read, write and pool acquisition, per attempt.
DEFAULT_TIMEOUT: Final = 10.0
#: Attempts of one idempotent call (1 = no retry). Four cover a short blip or a pod restart.
DEFAULT_MAX_ATTEMPTS: Final = 4
#: Seconds: the first backoff window; each retry doubles it (full jitter picks within it).
DEFAULT_BACKOFF_BASE: Final = 0.5
#: Seconds: the widest backoff window.
DEFAULT_BACKOFF_MAX: Final = 8.0
#: Seconds: no new attempt starts once a call has been retrying this long.
DEFAULT_RETRY_DEADLINE: Final = 60.0
#: Seconds: the longest ``Retry-After`` one call waits for. A server asking for more is
#: overloaded for longer than a run should block; the call gives up and the next run retries.
DEFAULT_RETRY_AFTER_MAX: Final = 30.0
#: Statuses whose ``Retry-After`` header is honoured (RFC 9110 section 10.2.3, RFC 6585).
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})

#: The permission a key needs to ingest data; what verifying a service token checks.
INGEST_PERMISSION: Final = "update-metrics"

_COLLECTIONS: Final[Mapping[KeyKind, str]] = {
    "service-token": "/security/tokens",
    "ingestion-api-key": "/security/ingestion/api_keys",
}
_AUTHORIZE_PATH: Final = "/security/ingestion/authorize"
_AUTHORIZATION_FOR_PATH: Final = "/user/authorization/for"
_SERVER_INFO_PATH: Final = "/server/info"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Characters allowed in a credential header: visible ASCII, no whitespace or control characters.
_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]+")
# Parts of error bodies we repeat in messages must look like identifiers, never free text.
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


# -- data ------------------------------------------------------------------------------------


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
class VerifyResult:
    """Whether StackState accepts a key value for ingestion, and why (never the value)."""

    accepted: bool
    #: e.g. ``accepted``, ``not accepted (401)``, ``lacks permission update-metrics (403)``.
    reason: str
    #: The HTTP status StackState answered, None when no request was needed.
    status: int | None = None


@dataclass(frozen=True)
class ServerInfo:
    """What ``/server/info`` says about the StackState server."""

    #: ``major.minor.patch``
    version: str
    #: ``Saas`` or ``SelfHosted``.
    deployment_mode: str
    platform_version: str | None


class StackStateSettingsLike(Protocol):
    """The ``stackstate:`` section of the configuration, as :meth:`StackStateClient.from_settings`
    reads it (the config module's model satisfies it)."""

    @property
    def url(self) -> str: ...
    @property
    def api_path(self) -> str: ...
    @property
    def service_token(self) -> SecretStr | None: ...
    @property
    def api_token(self) -> SecretStr | None: ...
    @property
    def service_bearer_file(self) -> Path | None: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def timeout(self) -> timedelta: ...
    @property
    def allow_insecure_http(self) -> bool: ...


# -- error mapping: the one place where httpx failures and HTTP statuses become our errors -----


def map_error(operation: str, failure: BaseException | httpx.Response) -> RotatorError:
    """Translate an httpx exception or an unexpected HTTP answer into the rotator's error tree.

    ``operation`` names the call (``list service-token keys``) and starts the message. The
    returned error is raised by the caller ``from`` the httpx exception.
    """
    if isinstance(failure, httpx.Response):
        return _error_from_response(operation, failure)
    if isinstance(failure, httpx.HTTPStatusError):
        return _error_from_response(operation, failure.response)
    return _error_from_exception(operation, failure)


def _error_from_exception(operation: str, exc: BaseException) -> RotatorError:
    reason = _reason(exc)
    suffix = f" ({reason})" if reason else ""
    target = _target_of(exc)
    # Most specific classes first: the checks follow httpx's hierarchy from the leaves up.
    if isinstance(exc, httpx.ConnectTimeout):
        return StackStateTimeout(f"{operation}: no connection to {target} within the timeout")
    if isinstance(exc, httpx.ReadTimeout):
        return StackStateTimeout(f"{operation}: no answer from {target} within the timeout")
    if isinstance(exc, httpx.WriteTimeout):
        return StackStateTimeout(f"{operation}: request to {target} not sent within the timeout")
    if isinstance(exc, httpx.PoolTimeout):
        return StackStateTimeout(f"{operation}: no free connection to {target} within the timeout")
    if isinstance(exc, httpx.TimeoutException):
        return StackStateTimeout(f"{operation}: {target} timed out")
    if isinstance(exc, httpx.ConnectError):
        tls = _ssl_error(exc)
        if tls is not None:
            return StackStateUnreachable(
                f"{operation}: TLS handshake with {target} failed ({_ssl_reason(tls)}); check the "
                "server certificate, its host name, and stackstate.ca_file for a private CA"
            )
        return StackStateUnreachable(f"{operation}: cannot connect to {target}{suffix}")
    if isinstance(exc, httpx.ReadError):
        return StackStateUnreachable(
            f"{operation}: connection to {target} lost while reading the answer{suffix}"
        )
    if isinstance(exc, httpx.WriteError):
        return StackStateUnreachable(
            f"{operation}: connection to {target} lost while sending the request{suffix}"
        )
    if isinstance(exc, httpx.CloseError):
        return StackStateUnreachable(f"{operation}: connection to {target} failed to close{suffix}")
    if isinstance(exc, httpx.NetworkError):
        return StackStateUnreachable(f"{operation}: network error talking to {target}{suffix}")
    if isinstance(exc, httpx.LocalProtocolError):
        # h11's own message may quote a header value (a credential): never repeat it.
        return StackStateProtocolError(f"{operation}: the request could not be encoded as HTTP")
    if isinstance(exc, httpx.RemoteProtocolError):
        return StackStateUnreachable(
            f"{operation}: {target} closed the connection or answered malformed HTTP"
        )
    if isinstance(exc, httpx.ProtocolError):
        return StackStateUnreachable(f"{operation}: HTTP protocol error talking to {target}")
    if isinstance(exc, httpx.ProxyError):
        return StackStateUnreachable(f"{operation}: the proxy to {target} failed{suffix}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigError(f"stackstate.url: unsupported URL scheme ({operation})")
    if isinstance(exc, httpx.TransportError):
        return StackStateUnreachable(f"{operation}: transport error talking to {target}")
    if isinstance(exc, httpx.DecodingError):
        return StackStateProtocolError(f"{operation}: the answer could not be decoded")
    if isinstance(exc, httpx.TooManyRedirects):
        return StackStateProtocolError(f"{operation}: too many redirects")
    if isinstance(exc, httpx.RequestError):
        return StackStateUnreachable(f"{operation}: request to {target} failed")
    if isinstance(exc, httpx.InvalidURL):
        return ConfigError(f"stackstate.url: invalid URL ({operation})")
    if isinstance(exc, httpx.StreamError):
        return StackStateProtocolError(f"{operation}: the answer stream was misused")
    if isinstance(exc, httpx.CookieConflict):
        return StackStateProtocolError(f"{operation}: the server set conflicting cookies")
    if isinstance(exc, httpx.HTTPError):
        return StackStateProtocolError(f"{operation}: HTTP error")
    # Not an httpx error: a bug or an OS-level failure outside httpx's mapping.
    return StackStateError(f"{operation}: unexpected {type(exc).__name__}")


def _error_from_response(operation: str, response: httpx.Response) -> RotatorError:
    status = response.status_code
    body = _json_object_or_none(response)
    error_type = _identifier(body.get("_type")) if body else None
    if status == 401:
        return StackStateUnauthorized(
            f"{operation}: unauthorized (401): the configured credential is not accepted",
            status=status,
        )
    if status == 403:
        return StackStateForbidden(
            f"{operation}: forbidden (403): the configured credential lacks the permission",
            status=status,
        )
    if status == 404:
        return StackStateNotFound(f"{operation}: not found (404)", status=status)
    if status == 429 or status >= 500:
        tracking_key = _identifier(body.get("trackingKey")) if body else None
        what = "rate limited" if status == 429 else "server error"
        detail = f" (tracking key {tracking_key})" if tracking_key else ""
        error = StackStateServerError(
            f"{operation}: {what} {status}{detail}", status=status, tracking_key=tracking_key
        )
        error.delay = _retry_after(response)
        return error
    if status == 400 and error_type is not None and error_type.endswith("InvalidExpiryError"):
        return StackStateInvalidExpiry(
            f"{operation}: the requested expiry was refused (400 {error_type})", status=status
        )
    if 400 <= status < 500:
        detail = f" {error_type}" if error_type else ""
        return StackStateBadRequest(f"{operation}: bad request ({status}{detail})", status=status)
    if 300 <= status < 400:
        return StackStateProtocolError(
            f"{operation}: unexpected redirect {status}; check stackstate.url and api_path",
            status=status,
        )
    return StackStateProtocolError(f"{operation}: unexpected status {status}", status=status)


def _json_object_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _identifier(value: object) -> str | None:
    """``value`` when it looks like an identifier (safe to repeat in a message), else None.

    A known secret value (one the process holds as a :class:`Secret`) is never an identifier,
    even when a server echoes it where an error type or tracking key belongs.
    """
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value) and redact(value) == value:
        return value
    return None


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in _RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(response.headers.get("Retry-After", ""), datetime.now(UTC))


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait that a ``Retry-After`` value asks for, or None when it is not valid.

    Both forms of RFC 9110: delay-seconds (``120``) and an HTTP-date (``Wed, 21 Oct 2015
    07:28:00 GMT``, judged against the aware ``now``; a date in the past means 0).
    """
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)  # an absurdly long number becomes inf: more than any cap
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # RFC 5322 "-0000": UTC without a claim
    return max(0.0, (moment - now).total_seconds())


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, innermost last (cycles guarded)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return cause
    # httpcore re-raises TLS failures as its own ConnectError with the SSL text as message.
    text = str(exc)
    if "SSL" in text or "CERTIFICATE" in text.upper():
        return ssl.SSLError(text)
    return None


def _ssl_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return redact(str(error))[:200] or "TLS error"


def _reason(exc: BaseException) -> str | None:
    """A short, value-free reason: the OS error text of the innermost OSError, if any."""
    for cause in reversed(_causes(exc)):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return None


def _target_of(exc: BaseException) -> str:
    """``scheme://host:port`` of the request that failed (never path, query or userinfo)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return "the StackState server"
    if not isinstance(url, httpx.URL):
        return "the StackState server"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _may_have_reached_server(error: StackStateError) -> bool:
    """Whether a failed request may have been processed: its outcome is unknown."""
    if isinstance(error, StackStateServerError):
        return error.status != 429  # a rate-limited request was not processed
    if isinstance(error, StackStateTimeout | StackStateUnreachable):
        not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
        return not isinstance(error.__cause__, not_sent)
    return False


def _may_still_be_in_flight(error: StackStateError) -> bool:
    """Whether the server may still be processing the request: it was sent and no answer came
    (a read timeout, a dropped connection). A server that answered (5xx, an unreadable body)
    has finished with it, so a listing afterwards is authoritative."""
    return isinstance(
        error, StackStateTimeout | StackStateUnreachable
    ) and _may_have_reached_server(error)


def _is_transient(error: BaseException) -> bool:
    """Whether an idempotent call failing with ``error`` is worth another attempt."""
    return isinstance(error, StackStateUnreachable | StackStateTimeout | StackStateServerError)


def _asked_delay(error: BaseException | None) -> float | None:
    """The ``Retry-After`` seconds a failed attempt's answer asked for, if any."""
    if isinstance(error, _CreateNotDone):
        error = error.cause
    if isinstance(error, StackStateServerError):
        return error.delay
    return None


def _gave_up_waiting(
    operation: str, failure: BaseException, asked: float, allowed: float
) -> BaseException:
    """The error of a call ended because the server asked to wait longer than it may."""
    cause = failure.cause if isinstance(failure, _CreateNotDone) else failure
    assert isinstance(cause, StackStateServerError)  # only such errors carry Retry-After
    shown = "an unbounded time" if math.isinf(asked) else f"{asked:.0f}s"
    error = StackStateServerError(
        f"{cause.message}; the server asks to retry after {shown}, longer than this call may "
        f"wait ({allowed:.0f}s): not retried now, the next run tries again",
        status=cause.status,
        tracking_key=cause.tracking_key,
    )
    error.delay = asked
    error.__cause__ = cause.__cause__
    log.warning(
        "stackstate.retry_after_too_long",
        operation=operation,
        retry_after_s=asked,
        allowed_s=round(allowed, 3),
        status=cause.status,
    )
    if isinstance(failure, _CreateNotDone):
        return _CreateNotDone(error)
    return error


# -- the client ------------------------------------------------------------------------------


class _StopWhen(tenacity.stop.stop_base):
    """A tenacity stop condition that asks a predicate (which needs no call state)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._predicate()


@dataclass(frozen=True)
class _CreateAnswer:
    """What a create answered: the new value, and (ingestion keys) the key's metadata."""

    value: Secret
    key: ApiKey | None


def _read_create_answer(operation: str, kind: KeyKind, response: httpx.Response) -> _CreateAnswer:
    """Parse a create's success answer; StackStateProtocolError when it cannot be read."""
    body = _json(operation, response)
    if not isinstance(body, dict):
        _contract(operation, "expected a JSON object")
    field = "token" if kind == "service-token" else "apiKey"
    raw = body.get(field)
    if not isinstance(raw, str) or not raw:
        _contract(operation, f"field '{field}' missing or not a string")
    value = Secret(raw)  # registered for redaction before anything else can go wrong
    if kind == "service-token":
        return _CreateAnswer(value, None)
    return _CreateAnswer(value, _parse_key(operation, kind, body, "the answer"))


class _CreateNotDone(Exception):
    """Internal: the create provably did not happen; tenacity may try it again."""

    def __init__(self, cause: StackStateError) -> None:
        super().__init__(cause.message)
        self.cause = cause


class StackStateClient:
    """A typed client of the StackState key API; use as a context manager or call close()."""

    def __init__(
        self,
        *,
        base_url: str,
        api_path: str = DEFAULT_API_PATH,
        service_token: Secret | None = None,
        api_token: Secret | None = None,
        service_bearer_file: Path | None = None,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        verify_tls: bool = True,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Build the client; nothing is sent until the first call.

        Exactly one credential is sent with each call (StackState authenticates a request by one
        credential): ``service_token`` (``X-API-Key``) when given, else ``api_token``
        (``X-API-Token``), else the content of ``service_bearer_file``
        (``X-API-ServiceBearer``), which is read at every request so a rotated Kubernetes
        service-account token is picked up. ``ca_file`` adds a CA bundle to the system trust store.
        ``timeout`` bounds each phase of each attempt (connect, write, read, pool). Retried calls
        make at most ``max_attempts`` attempts, sleeping a random time in
        ``[0, min(backoff_max, backoff_base * 2**n)]`` before retry ``n`` (full jitter), and start
        no new attempt once ``retry_deadline`` seconds have passed. A ``Retry-After`` of a 429 or
        503 lengthens that sleep; one longer than ``retry_after_max`` or than what is left of
        ``retry_deadline`` ends the call at once (see the module docstring).
        ``transport`` replaces the network (tests of httpx itself only). Raises
        :class:`ConfigError` for an unusable URL, credential or CA file.
        """
        if service_token is None and api_token is None and service_bearer_file is None:
            raise ConfigError(
                "stackstate: no credential configured (service_token, api_token or "
                "service_bearer_file)"
            )
        for field_name, secret in (("service_token", service_token), ("api_token", api_token)):
            if secret is not None and not _HEADER_VALUE.fullmatch(secret.reveal()):
                raise ConfigError(
                    f"stackstate.{field_name}: empty or contains whitespace or control characters"
                )
        configured = [
            name
            for name, given in (
                ("service_token", service_token),
                ("api_token", api_token),
                ("service_bearer_file", service_bearer_file),
            )
            if given is not None
        ]
        if len(configured) > 1:
            log.warning(
                "stackstate.credentials_ignored", used=configured[0], ignored=configured[1:]
            )
        if timeout <= 0:
            raise ConfigError("stackstate.timeout: must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._origin = _check_base_url(base_url)
        self._api_path = _normalise_api_path(api_path)
        self._service_token = service_token
        self._api_token = api_token
        self._service_bearer_file = service_bearer_file
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_deadline = retry_deadline
        self._retry_after_max = retry_after_max
        verify: ssl.SSLContext | bool = _ssl_context(ca_file) if verify_tls else False
        if not verify_tls:
            log.warning("stackstate.tls_verification_disabled", url=self._origin)
        self._http = httpx.Client(
            base_url=self._origin + self._api_path,
            timeout=httpx.Timeout(timeout),
            verify=verify,
            transport=transport,
            follow_redirects=False,
            # A session cookie set on an admin call must never authenticate a verify call, which
            # has to be judged on the candidate key alone: refuse every cookie.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={"User-Agent": f"stackstate-key-rotator/{__version__}"},
        )

    @classmethod
    def from_settings(cls, settings: StackStateSettingsLike) -> Self:
        """Build a client from the ``stackstate:`` configuration section.

        Raises :class:`ConfigError` for an ``http://`` URL unless ``allow_insecure_http``.
        """
        scheme = urlsplit(settings.url).scheme.lower()
        if scheme == "http" and not settings.allow_insecure_http:
            raise ConfigError(
                "stackstate.url: plain http:// would send credentials unencrypted; use https:// "
                "or set stackstate.allow_insecure_http: true"
            )

        def secret(value: SecretStr | None) -> Secret | None:
            return None if value is None else Secret(value.get_secret_value())

        return cls(
            base_url=settings.url,
            api_path=settings.api_path,
            service_token=secret(settings.service_token),
            api_token=secret(settings.api_token),
            service_bearer_file=settings.service_bearer_file,
            ca_file=settings.ca_file,
            timeout=settings.timeout.total_seconds(),
        )

    @property
    def url(self) -> str:
        """The API base URL (``scheme://host:port/api``), safe to print."""
        return self._origin + self._api_path

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public calls ----------------------------------------------------------------------

    def list_keys(self, kind: KeyKind) -> list[ApiKey]:
        """Every key of ``kind`` (metadata only); retried on transient failures."""
        _check_kind(kind)
        operation = f"list {kind} keys"
        response = self._call(
            operation, "GET", _COLLECTIONS[kind], headers=self._admin_headers(), expected={200}
        )
        body = _json(operation, response)
        if not isinstance(body, list):
            _contract(operation, "expected a JSON array")
        return [
            _parse_key(operation, kind, item, f"item {index}") for index, item in enumerate(body)
        ]

    def find_by_name(self, kind: KeyKind, name: str) -> list[ApiKey]:
        """The keys of ``kind`` named exactly ``name`` (more than one only after a mishap)."""
        return [key for key in self.list_keys(kind) if key.name == name]

    def delete_key(self, kind: KeyKind, key_id: int, *, missing_ok: bool = False) -> None:
        """Delete a key; retried on transient failures.

        A 404 raises :class:`StackStateNotFound` unless ``missing_ok``, or unless an earlier
        attempt of this call may have reached the server (then that attempt deleted it).
        """
        _check_kind(kind)
        operation = f"delete {kind} key {key_id}"
        maybe_done = False

        def attempt_once(attempt: int) -> None:
            nonlocal maybe_done
            try:
                self._send(
                    operation,
                    "DELETE",
                    f"{_COLLECTIONS[kind]}/{key_id}",
                    attempt=attempt,
                    headers=self._admin_headers(),
                    expected={200, 204},
                )
            except StackStateNotFound:
                if missing_ok or maybe_done:
                    log.info(
                        "stackstate.delete_already_gone",
                        operation=operation,
                        kind=kind,
                        key_id=key_id,
                        after_ambiguous_attempt=maybe_done,
                    )
                    return
                raise
            except StackStateError as error:
                maybe_done = maybe_done or _may_have_reached_server(error)
                raise

        self._retry(operation, attempt_once, _is_transient)

    def create_key(
        self,
        kind: KeyKind,
        name: str,
        *,
        expiration: datetime | None,
        roles: Sequence[str] | None = None,
        description: str | None = None,
        dedicated_subject: str | None = None,
    ) -> CreatedKey:
        """Create a key named ``name`` (which must be unique) and return it with its value.

        ``expiration`` (aware; None = never expires) becomes ``expiryDate`` of a service token or
        ``expiration`` of an ingestion key. ``roles`` (required, non-empty) and
        ``dedicated_subject`` apply to service tokens only; ``description`` to ingestion keys only
        (the service-token create request has no description). A create whose outcome is unknown
        is settled by listing for ``name``, never by creating blindly again (see the module
        docstring).
        """
        _check_kind(kind)
        body = _create_body(
            kind,
            name=name,
            expiration=expiration,
            roles=roles,
            description=description,
            dedicated_subject=dedicated_subject,
        )
        operation = f"create {kind} key {name}"
        path = _COLLECTIONS[kind]

        def attempt_once(attempt: int) -> _CreateAnswer:
            try:
                response = self._send(
                    operation,
                    "POST",
                    path,
                    attempt=attempt,
                    headers=self._admin_headers(),
                    json_body=body,
                    expected={200, 201},
                )
            except StackStateError as error:
                if _may_have_reached_server(error):
                    self._settle_unknown_create(operation, kind, name, error)
                    raise _CreateNotDone(error) from error
                if _is_transient(error):
                    raise _CreateNotDone(error) from error
                raise
            try:
                return _read_create_answer(operation, kind, response)
            except StackStateProtocolError as error:
                # A success status whose body cannot be read (truncated JSON, a proxy's HTML
                # page, no value in it): the key may exist with a value nobody holds. Settle
                # it like a lost answer, so no key is left behind (I3) and none is made twice.
                log.warning(
                    "stackstate.create_answer_unreadable",
                    operation=operation,
                    kind=kind,
                    key_name=name,
                    status=response.status_code,
                    content_type=_identifier(
                        response.headers.get("Content-Type", "").split(";")[0]
                    ),
                )
                self._settle_unknown_create(operation, kind, name, error)
                raise _CreateNotDone(error) from error

        try:
            answer = self._retry(
                operation, attempt_once, lambda exc: isinstance(exc, _CreateNotDone)
            )
        except _CreateNotDone as signal:
            raise signal.cause from signal.cause.__cause__
        if kind == "service-token":
            return self._finish_service_token(operation, name, answer.value)
        return self._finish_ingestion_key(operation, name, answer)

    def verify(
        self, kind: KeyKind, value: Secret, *, with_receiver_key: bool = False
    ) -> VerifyResult:
        """Ask StackState whether ``value`` is accepted for ingestion (read-only; retried).

        Service tokens: ``GET /user/authorization/for?permission=update-metrics`` with only the
        candidate as ``X-API-Key`` (204 accepted, 401 not accepted, 403 lacks the permission).
        Ingestion keys: ``POST /security/ingestion/authorize`` with the admin credential (204
        accepted, 403 not accepted); ``with_receiver_key`` also accepts the receiver API key.
        Any other answer raises the mapped error.
        """
        _check_kind(kind)
        operation = f"verify {kind} key"
        if not value:
            return VerifyResult(False, "not accepted (empty value)")
        if kind == "service-token":
            if with_receiver_key:
                raise ValueError("with_receiver_key applies to ingestion API keys only")
            if not _HEADER_VALUE.fullmatch(value.reveal()):
                return VerifyResult(False, "not accepted (not a valid HTTP header value)")
            response = self._call(
                operation,
                "GET",
                _AUTHORIZATION_FOR_PATH,
                params={"permission": INGEST_PERMISSION},
                headers={"X-API-Key": value.reveal()},
                expected={204, 401, 403},
            )
            status = response.status_code
            if status == 204:
                return VerifyResult(True, "accepted", status)
            if status == 401:
                return VerifyResult(False, "not accepted (401)", status)
            return VerifyResult(False, f"lacks permission {INGEST_PERMISSION} (403)", status)
        response = self._call(
            operation,
            "POST",
            _AUTHORIZE_PATH,
            params={"withReceiverKey": "true"} if with_receiver_key else None,
            headers=self._admin_headers(),
            json_body={"apiKey": value.reveal()},
            expected={204, 403},
        )
        if response.status_code == 204:
            return VerifyResult(True, "accepted", 204)
        return VerifyResult(False, "not accepted (403)", 403)

    def authorized_for(self, permission: str) -> bool | None:
        """Whether the rotator's own credential holds ``permission`` (read-only; retried).

        ``GET /user/authorization/for?permission=...`` with the configured credential: 204 True,
        403 False, 400 None (the server does not know that permission). A 401 raises
        :class:`StackStateUnauthorized`, like every call made with a credential not accepted.
        """
        operation = f"check permission {permission}"
        response = self._call(
            operation,
            "GET",
            _AUTHORIZATION_FOR_PATH,
            params={"permission": permission},
            headers=self._admin_headers(),
            expected={204, 400, 403},
        )
        return {204: True, 403: False}.get(response.status_code)

    def server_info(self) -> ServerInfo:
        """The server's version and deployment mode; retried on transient failures."""
        operation = "server info"
        response = self._call(
            operation, "GET", _SERVER_INFO_PATH, headers=self._admin_headers(), expected={200}
        )
        body = _json(operation, response)
        if not isinstance(body, dict):
            _contract(operation, "expected a JSON object")
        version = body.get("version")
        if not isinstance(version, dict):
            _contract(operation, "field 'version' missing or not an object")
        numbers = [
            _int(operation, version, part, "version") for part in ("major", "minor", "patch")
        ]
        mode = body.get("deploymentMode")
        if not isinstance(mode, str):
            _contract(operation, "field 'deploymentMode' missing or not a string")
        platform = body.get("platformVersion")
        if platform is not None and not isinstance(platform, str):
            _contract(operation, "field 'platformVersion' is not a string")
        return ServerInfo(".".join(str(n) for n in numbers), mode, platform)

    # -- create helpers --------------------------------------------------------------------

    def _settle_unknown_create(
        self, operation: str, kind: KeyKind, name: str, error: StackStateError
    ) -> None:
        """Return when no key ``name`` exists (the create may be tried again); raise otherwise."""
        log.warning(
            "stackstate.create_outcome_unknown",
            operation=operation,
            kind=kind,
            key_name=name,
            error=type(error).__name__,
            status=error.status,
        )
        try:
            found = self.find_by_name(kind, name)
        except StackStateError as list_error:
            raise AmbiguousCreateError(
                f"{error.message}; the outcome is unknown and listing {kind} keys failed "
                f"({type(list_error).__name__}): a key named {name} may exist without a known "
                "value, the next run's sweep deletes it",
                status=error.status,
            ) from error
        if not found:
            if _may_still_be_in_flight(error):
                # No answer at all: the server may still be working on the create, so "not
                # listed yet" proves nothing, and creating again could make a second key (I6).
                raise AmbiguousCreateError(
                    f"{error.message}; no key named {name} is listed yet, but the create may "
                    "still be under way: not creating again (the next run rotates with a new "
                    "name; a late key is swept once orphan_min_age old)",
                    status=error.status,
                ) from error
            log.info("stackstate.create_not_done", operation=operation, kind=kind, key_name=name)
            return
        ids = sorted(key.id for key in found)
        if len(ids) > 1:
            raise self._ambiguous_name(operation, kind, name, ids, status=error.status) from error
        self._delete_all(operation, kind, name, ids, cause=error)
        raise _same_kind(
            error,
            f"{error.message}; the key was created nonetheless but its value was lost, so the "
            f"key named {name} (id {ids[0]}) was deleted",
        ) from error

    def _ambiguous_name(
        self, operation: str, kind: KeyKind, name: str, ids: Sequence[int], *, status: int | None
    ) -> AmbiguousCreateError:
        """Several keys share the create's name: delete none of them (another rotator's key
        may be among them, held by its targets), and say so."""
        log.warning(
            "stackstate.create_name_ambiguous",
            operation=operation,
            kind=kind,
            key_name=name,
            key_ids=list(ids),
        )
        return AmbiguousCreateError(
            f"{operation}: {len(ids)} keys named {name} exist (id {', '.join(map(str, ids))}) "
            "and nobody can tell which one this create made; none was deleted, since a target "
            "may hold one of them: the sweep deletes those no target references",
            status=status,
        )

    def _delete_all(
        self,
        operation: str,
        kind: KeyKind,
        name: str,
        ids: Sequence[int],
        *,
        cause: BaseException | None,
    ) -> None:
        """Delete keys whose value nobody holds; AmbiguousCreateError if any deletion fails."""
        for key_id in ids:
            try:
                self.delete_key(kind, key_id, missing_ok=True)
            except StackStateError as delete_error:
                raise AmbiguousCreateError(
                    f"{operation}: key {key_id} named {name} holds a lost value and could not be "
                    f"deleted ({delete_error.message}); the next run's sweep deletes it",
                    status=delete_error.status,
                ) from (cause or delete_error)
            log.warning(
                "stackstate.lost_key_deleted",
                operation=operation,
                kind=kind,
                key_name=name,
                key_id=key_id,
            )

    def _finish_service_token(self, operation: str, name: str, value: Secret) -> CreatedKey:
        """Find the id of a token just created (the create answer holds none) by its name."""
        try:
            found = self.find_by_name("service-token", name)
        except StackStateError as list_error:
            raise AmbiguousCreateError(
                f"{operation}: created, but listing to find its id failed ({list_error.message}); "
                "the value is discarded and the next run's sweep deletes the key",
                status=list_error.status,
            ) from list_error
        if len(found) == 1:
            log.info(
                "stackstate.key_created",
                operation=operation,
                kind="service-token",
                key_name=name,
                key_id=found[0].id,
                fingerprint=value.fingerprint,
            )
            return CreatedKey(found[0], value)
        if not found:
            raise AmbiguousCreateError(
                f"{operation}: created, but no key named {name} is listed, so its id is unknown; "
                "the value is discarded"
            )
        ids = sorted(key.id for key in found)
        raise self._ambiguous_name(operation, "service-token", name, ids, status=None)

    def _finish_ingestion_key(self, operation: str, name: str, answer: _CreateAnswer) -> CreatedKey:
        key, value = answer.key, answer.value
        assert key is not None  # _read_create_answer parses the key of an ingestion create
        if key.name != name:
            self._delete_all(operation, "ingestion-api-key", key.name, [key.id], cause=None)
            _contract(operation, "the created key carries another name; it was deleted")
        log.info(
            "stackstate.key_created",
            operation=operation,
            kind="ingestion-api-key",
            key_name=name,
            key_id=key.id,
            fingerprint=value.fingerprint,
        )
        # Another key listed under this name (an earlier attempt whose answer was lost and
        # that was processed after our listing, or another rotator's key) is not deleted here:
        # this lookup cannot tell whether a target holds it. The sweep deletes it once no
        # target references it.
        try:
            strays = [k.id for k in self.find_by_name("ingestion-api-key", name) if k.id != key.id]
        except StackStateError as lookup_error:
            log.warning(
                "stackstate.create_lookup_failed",
                operation=operation,
                key_name=name,
                error=type(lookup_error).__name__,
            )
        else:
            if strays:
                log.warning(
                    "stackstate.create_name_shared",
                    operation=operation,
                    key_name=name,
                    key_id=key.id,
                    other_ids=sorted(strays),
                )
        return CreatedKey(key, value)

    # -- plumbing --------------------------------------------------------------------------

    def _admin_headers(self) -> dict[str, str]:
        """The rotator's own credential, as exactly one header (see :meth:`__init__`).

        The bearer file is re-read at every call, so a rotated service-account token works.
        """
        if self._service_token is not None:
            return {"X-API-Key": self._service_token.reveal()}
        if self._api_token is not None:
            return {"X-API-Token": self._api_token.reveal()}
        assert self._service_bearer_file is not None  # the constructor demands one credential
        path = self._service_bearer_file
        try:
            bearer = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise ConfigError(
                f"stackstate.service_bearer_file {path}: cannot read ({reason})"
            ) from None
        if not _HEADER_VALUE.fullmatch(bearer):
            raise ConfigError(f"stackstate.service_bearer_file {path}: empty or not a single token")
        return {"X-API-ServiceBearer": bearer}

    def _retry(
        self,
        operation: str,
        attempt_once: Callable[[int], _T],
        should_retry: Callable[[BaseException], bool],
    ) -> _T:
        """Run ``attempt_once(attempt_number)`` with bounded backoff and full jitter.

        A ``Retry-After`` the server sent with the failure is the least sleep before the next
        attempt; one beyond what this call may wait ends it (:meth:`_too_long_to_wait`).
        """
        started = time.monotonic()
        backoff = tenacity.wait_random_exponential(
            multiplier=self._backoff_base, max=self._backoff_max
        )
        too_long: list[tuple[float, float]] = []  # (asked, allowed) once the server asked too much

        def wait(state: tenacity.RetryCallState) -> float:
            sleep = backoff(state)
            asked = _asked_delay(state.outcome.exception() if state.outcome else None)
            if asked is None:
                return sleep
            allowed = min(
                self._retry_after_max,
                max(0.0, self._retry_deadline - (time.monotonic() - started)),
            )
            if asked > allowed:
                too_long.append((asked, allowed))
                return 0.0
            return max(sleep, asked)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _CreateNotDone):
                error = error.cause
            log.info(
                "stackstate.retry",
                operation=operation,
                attempt=state.attempt_number,
                sleep_s=round(state.upcoming_sleep, 3),
                retry_after_s=_asked_delay(error),
                error=type(error).__name__,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self._max_attempts),
                tenacity.stop_before_delay(self._retry_deadline),
                _StopWhen(lambda: bool(too_long)),
            ),
            wait=wait,
            retry=tenacity.retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        attempts = itertools.count(1)
        try:
            return retrying(lambda: attempt_once(next(attempts)))
        except (StackStateServerError, _CreateNotDone) as failure:
            if not too_long:
                raise
            asked, allowed = too_long[-1]
            raise _gave_up_waiting(operation, failure, asked, allowed) from failure

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        expected: Collection[int],
        params: Mapping[str, str] | None = None,
        json_body: object = None,
    ) -> httpx.Response:
        """An idempotent request, retried on transient failures."""
        return self._retry(
            operation,
            lambda attempt: self._send(
                operation,
                method,
                path,
                attempt=attempt,
                headers=headers,
                expected=expected,
                params=params,
                json_body=json_body,
            ),
            _is_transient,
        )

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        attempt: int,
        headers: Mapping[str, str],
        expected: Collection[int],
        params: Mapping[str, str] | None = None,
        json_body: object = None,
    ) -> httpx.Response:
        """One request; an answer outside ``expected`` or a failure raises the mapped error."""
        started = time.monotonic()
        fields = {"operation": operation, "method": method, "path": path, "attempt": attempt}
        try:
            response = self._http.request(
                method, path, headers=headers, params=params, json=json_body
            )
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
            error = map_error(operation, exc)
            log.warning(
                "stackstate.request_failed",
                **fields,
                error=type(error).__name__,
                cause=type(exc).__name__,
                elapsed_ms=_elapsed_ms(started),
            )
            raise error from exc
        status = response.status_code
        if status not in expected:
            error = map_error(operation, response)
            log.warning(
                "stackstate.request_failed",
                **fields,
                status=status,
                error=type(error).__name__,
                elapsed_ms=_elapsed_ms(started),
            )
            raise error
        log.debug("stackstate.request", **fields, status=status, elapsed_ms=_elapsed_ms(started))
        return response


# -- helpers ---------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {kind!r}; expected one of {', '.join(KEY_KINDS)}")


def _check_base_url(base_url: str) -> str:
    """``scheme://host[:port]`` of a valid base URL; ConfigError otherwise."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError("stackstate.url: not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError("stackstate.url: must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("stackstate.url: must not carry credentials; use the token settings")
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise ConfigError(
            "stackstate.url: give the server's base URL only; the API path goes in api_path"
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def _normalise_api_path(api_path: str) -> str:
    stripped = api_path.strip().strip("/")
    if any(c in stripped for c in "?#") or any(c.isspace() for c in stripped):
        raise ConfigError("stackstate.api_path: must be a plain path such as /api")
    return f"/{stripped}" if stripped else ""


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store, plus ``ca_file`` when given (e.g. a private CA)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM"
            raise ConfigError(f"stackstate.ca_file {ca_file}: cannot load ({reason})") from None
    return context


def _create_body(
    kind: KeyKind,
    *,
    name: str,
    expiration: datetime | None,
    roles: Sequence[str] | None,
    description: str | None,
    dedicated_subject: str | None,
) -> dict[str, object]:
    if not name or name != name.strip():
        raise ValueError("a key name must be non-empty without surrounding whitespace")
    body: dict[str, object] = {"name": name}
    if kind == "service-token":
        if roles is None or isinstance(roles, str) or not roles:
            raise ValueError("a service token needs a non-empty list of roles")
        if description is not None:
            raise ValueError("the service-token create request has no description field")
        body["roles"] = list(roles)
        if expiration is not None:
            body["expiryDate"] = to_epoch_ms(expiration)
        if dedicated_subject is not None:
            body["dedicatedSubject"] = dedicated_subject
        return body
    if roles is not None or dedicated_subject is not None:
        raise ValueError("roles and dedicated_subject apply to service tokens only")
    if description is not None:
        body["description"] = description
    if expiration is not None:
        body["expiration"] = to_epoch_ms(expiration)
    return body


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (the API's timestamp format)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps sent to StackState must be timezone-aware")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(millis: int) -> datetime:
    """The aware UTC datetime of an epoch-milliseconds timestamp."""
    return _EPOCH + timedelta(milliseconds=millis)


def _json(operation: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        _contract(operation, "the answer is not JSON")


def _contract(operation: str, detail: str) -> NoReturn:
    """Raise the error for an answer that breaks the API contract (detail never holds values)."""
    raise StackStateProtocolError(f"{operation}: unexpected answer: {detail}")


def _int(operation: str, obj: Mapping[str, Any], field: str, where: str) -> int:
    value = obj.get(field)
    # bool is an int in Python, never in the API.
    if not isinstance(value, int) or isinstance(value, bool):
        _contract(operation, f"{where}: field '{field}' missing or not an integer")
    return value


def _optional_ms(operation: str, obj: Mapping[str, Any], field: str, where: str) -> datetime | None:
    if obj.get(field) is None:
        return None
    millis = _int(operation, obj, field, where)
    try:
        return from_epoch_ms(millis)
    except OverflowError:
        _contract(operation, f"{where}: field '{field}' is out of range")


def _parse_key(operation: str, kind: KeyKind, item: object, where: str) -> ApiKey:
    if not isinstance(item, dict):
        _contract(operation, f"{where} is not an object")
    name = item.get("name")
    if not isinstance(name, str):
        _contract(operation, f"{where}: field 'name' missing or not a string")
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        _contract(operation, f"{where}: field 'description' is not a string")
    roles: tuple[str, ...] | None = None
    if kind == "service-token":
        raw_roles = item.get("roles")
        if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
            _contract(operation, f"{where}: field 'roles' missing or not a list of strings")
        roles = tuple(raw_roles)
    return ApiKey(
        kind=kind,
        id=_int(operation, item, "id", where),
        name=name,
        description=description,
        expiration=_optional_ms(operation, item, "expiration", where),
        roles=roles,
        last_updated=_optional_ms(operation, item, "lastUpdateTimestamp", where),
    )


def _same_kind(error: StackStateError, message: str) -> StackStateError:
    """A copy of ``error`` with another message (same class, status and tracking key)."""
    if isinstance(error, StackStateServerError):
        copy: StackStateError = StackStateServerError(
            message, status=error.status, tracking_key=error.tracking_key
        )
    else:
        copy = type(error)(message, status=error.status)
    return copy


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
