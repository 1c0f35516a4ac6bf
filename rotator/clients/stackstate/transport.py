"""The HTTP side of the StackState client: connection, credentials, one request, retries.

Every call has a timeout. Reads, deletes and the read-only ``authorize`` POST are retried with
exponential backoff and full jitter (tenacity), bounded by attempts and by total time, on
connection errors, timeouts and 5xx (invariant I6).

A ``Retry-After`` on a 429 or 503 (seconds or an HTTP-date) is honoured: the next attempt waits
at least that long. A server that asks for more than the call may still wait (the smaller of
``retry_after_max`` and what is left of ``retry_deadline``) is not retried at all: the call
gives up at once with :class:`~rotator.errors.StackStateServerError` (category ``retry``,
``delay`` = the requested wait) whose message names the delay, and the next run tries again.
"""

from __future__ import annotations

import itertools
import math
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar
from urllib.parse import urlsplit

import httpx
import structlog
import tenacity

from rotator import __version__
from rotator.clients.stackstate.errors import _is_transient, map_error
from rotator.errors import ConfigError, StackStateError, StackStateServerError
from rotator.secrets import Secret

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

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
# Characters allowed in a credential header: visible ASCII, no whitespace or control characters.
_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]+")


class _StopWhen(tenacity.stop.stop_base):
    """A tenacity stop condition that asks a predicate (which needs no call state)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._predicate()


class _CreateNotDone(Exception):
    """Internal: the create provably did not happen; tenacity may try it again."""

    def __init__(self, cause: StackStateError) -> None:
        super().__init__(cause.message)
        self.cause = cause


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


class StackStateTransport:
    """Connection, credentials and retried requests: the base of
    :class:`~rotator.clients.stackstate.client.StackStateClient`."""

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


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
