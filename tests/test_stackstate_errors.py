"""rotator.clients.stackstate.map_error: each httpx failure and HTTP status has one mapped class."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from rotator.clients.stackstate import map_error
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
from rotator.secrets import Secret

OPERATION = "list service-token keys"
REQUEST = httpx.Request("GET", "https://user:pw@stackstate.example:8443/api/security/tokens?x=1")

#: What each httpx exception class becomes. A class httpx adds later fails the completeness test.
EXPECTED: dict[str, type[RotatorError]] = {
    "HTTPError": StackStateProtocolError,
    "RequestError": StackStateUnreachable,
    "TransportError": StackStateUnreachable,
    "TimeoutException": StackStateTimeout,
    "ConnectTimeout": StackStateTimeout,
    "ReadTimeout": StackStateTimeout,
    "WriteTimeout": StackStateTimeout,
    "PoolTimeout": StackStateTimeout,
    "NetworkError": StackStateUnreachable,
    "ConnectError": StackStateUnreachable,
    "ReadError": StackStateUnreachable,
    "WriteError": StackStateUnreachable,
    "CloseError": StackStateUnreachable,
    "ProtocolError": StackStateUnreachable,
    "LocalProtocolError": StackStateProtocolError,
    "RemoteProtocolError": StackStateUnreachable,
    "ProxyError": StackStateUnreachable,
    "UnsupportedProtocol": ConfigError,
    "DecodingError": StackStateProtocolError,
    "TooManyRedirects": StackStateProtocolError,
    "HTTPStatusError": StackStateServerError,  # built below around a 502 answer
    "InvalidURL": ConfigError,
    "CookieConflict": StackStateProtocolError,
    "StreamError": StackStateProtocolError,
    "StreamConsumed": StackStateProtocolError,
    "StreamClosed": StackStateProtocolError,
    "ResponseNotRead": StackStateProtocolError,
    "RequestNotRead": StackStateProtocolError,
}


def _subclasses(root: type[Exception]) -> Iterator[type[Exception]]:
    yield root
    for sub in root.__subclasses__():
        yield from _subclasses(sub)


def httpx_exception_classes() -> list[type[Exception]]:
    """Every exception class httpx defines, found by walking its exception hierarchy."""
    roots = [
        obj
        for name in httpx.__all__
        if isinstance(obj := getattr(httpx, name), type) and issubclass(obj, Exception)
    ]
    found = {
        cls for root in roots for cls in _subclasses(root) if cls.__module__.startswith("httpx")
    }
    return sorted(found, key=lambda cls: cls.__name__)


def instantiate(cls: type[Exception]) -> Exception:
    """An instance of an httpx exception class, bound to REQUEST where the class takes one."""
    if issubclass(cls, httpx.HTTPStatusError):
        response = httpx.Response(502, request=REQUEST)
        return cls("bad gateway", request=REQUEST, response=response)
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    try:
        return cls("boom")
    except TypeError:
        return cls()  # the StreamError subclasses take no message


class TestExceptionMapping:
    """httpx exceptions become the most specific rotator error."""

    def test_every_httpx_exception_class_has_an_expected_mapping(self) -> None:
        """The table below covers exactly the classes httpx defines, so none is left unmapped."""
        assert sorted(cls.__name__ for cls in httpx_exception_classes()) == sorted(EXPECTED)

    @pytest.mark.parametrize("cls", httpx_exception_classes(), ids=lambda cls: cls.__name__)
    def test_each_httpx_exception_maps_to_its_class(self, cls: type[Exception]) -> None:
        """Each httpx exception maps to exactly the expected class, never to the generic base."""
        error = map_error(OPERATION, instantiate(cls))
        assert type(error) is EXPECTED[cls.__name__]
        assert type(error) is not StackStateError
        assert str(error).startswith(OPERATION) or str(error).startswith("stackstate.url")

    def test_messages_name_the_origin_but_never_userinfo_path_or_query(self) -> None:
        """The target in a message is scheme://host:port, with no credentials, path or query."""
        error = map_error(OPERATION, httpx.ConnectError("refused", request=REQUEST))
        assert "https://stackstate.example:8443" in str(error)
        for hidden in ("user", "pw", "/api/security", "x=1"):
            assert hidden not in str(error)

    def test_local_protocol_error_text_is_not_repeated(self) -> None:
        """h11's message may quote a header value (a credential), so it is left out."""
        leaked = "Illegal header value b'svctok-secret-value\\n'"
        error = map_error(OPERATION, httpx.LocalProtocolError(leaked, request=REQUEST))
        assert "svctok" not in str(error)

    def test_tls_failures_say_so(self) -> None:
        """A certificate verification failure is reported as a TLS/certificate problem."""
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        cause.verify_message = "self-signed certificate in certificate chain"
        exc = httpx.ConnectError("ssl failure", request=REQUEST)
        exc.__cause__ = cause
        message = str(map_error(OPERATION, exc))
        assert "TLS handshake" in message
        assert "self-signed certificate in certificate chain" in message

    def test_os_error_reason_is_kept(self) -> None:
        """The OS reason of a network failure (e.g. connection refused) is in the message."""
        exc = httpx.ConnectError("failed", request=REQUEST)
        exc.__cause__ = ConnectionRefusedError(111, "Connection refused")
        assert str(map_error(OPERATION, exc)).endswith("(Connection refused)")


def answer(
    status: int, json: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A real httpx answer with a JSON body (or none), bound to REQUEST."""
    if json is None:
        return httpx.Response(status, headers=headers, request=REQUEST)
    return httpx.Response(status, json=json, headers=headers, request=REQUEST)


class TestStatusMapping:
    """HTTP answers outside what an operation expects."""

    @pytest.mark.parametrize(
        ("status", "body", "expected"),
        [
            (
                400,
                {"_type": "IngestionApiKeyInvalidExpiryError", "message": "m"},
                StackStateInvalidExpiry,
            ),
            (
                400,
                {"_type": "ServiceTokenInvalidExpiryError", "message": "m"},
                StackStateInvalidExpiry,
            ),
            (400, None, StackStateBadRequest),
            (401, None, StackStateUnauthorized),
            (403, None, StackStateForbidden),
            (404, {"_type": "ServiceTokenNotFoundError", "message": "m"}, StackStateNotFound),
            (409, None, StackStateBadRequest),
            (429, None, StackStateServerError),
            (
                500,
                {"_type": "ErrorsResponse", "errors": [], "trackingKey": "abc"},
                StackStateServerError,
            ),
            (504, None, StackStateServerError),
            (302, None, StackStateProtocolError),
            (200, None, StackStateProtocolError),
        ],
    )
    def test_status_maps_to_class(
        self, status: int, body: object, expected: type[StackStateError]
    ) -> None:
        """Each status (and 400 error type) maps to one class that records the status."""
        error = map_error(OPERATION, answer(status, body))
        assert type(error) is expected
        assert isinstance(error, StackStateError)
        assert error.status == status

    def test_server_error_message_carries_the_tracking_key(self) -> None:
        """A 5xx message names operation, status and tracking key, in that order."""
        body = {
            "_type": "ErrorsResponse",
            "errors": [],
            "trackingKey": "abc-123",
            "serverTimestamp": 1,
        }
        error = map_error(OPERATION, answer(503, body))
        assert str(error) == "list service-token keys: server error 503 (tracking key abc-123)"
        assert isinstance(error, StackStateServerError)
        assert error.tracking_key == "abc-123"

    def test_retry_after_becomes_the_delay_hint(self) -> None:
        """A 429's Retry-After seconds become the temporary error's delay."""
        error = map_error(OPERATION, answer(429, headers={"Retry-After": "7"}))
        assert isinstance(error, StackStateServerError)
        assert error.delay == 7.0

    def test_error_bodies_are_never_repeated(self) -> None:
        """Free text and known secret values in an error body never reach the message."""
        value = Secret("svctok-known-secret-value").reveal()
        body = {"_type": value, "message": f"bad key {value}", "trackingKey": value, "errors": []}
        for status in (400, 409, 500):
            message = str(map_error(OPERATION, answer(status, body)))
            assert value not in message
            assert "bad key" not in message
