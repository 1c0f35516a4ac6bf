"""The one place where httpx failures and HTTP statuses become the rotator's errors.

:func:`map_error` translates into the :mod:`rotator.errors` tree::

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
identifiers. The predicates at the end classify a failure for the retry rules: transient or
not, and whether the request may have reached the server.
"""

from __future__ import annotations

import email.utils
import re
import ssl
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from rotator.errors import (
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
from rotator.secrets import redact

#: Statuses whose ``Retry-After`` header is honoured (RFC 9110 section 10.2.3, RFC 6585).
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
# Parts of error bodies we repeat in messages must look like identifiers, never free text.
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


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
