"""An in-memory emulator of the StackState (SUSE Observability) API paths the rotator uses.

It serves every path of the OpenAPI excerpt of the API published with the StackState CLI (kept
with this repository's tests as ``tests/contract/stackstate-openapi.yaml``) under a configurable
base path, ``/api`` by default, over real HTTP on 127.0.0.1:

=======  ==========================================  ===========================================
method   path (under ``api_path``)                   permission the caller needs
=======  ==========================================  ===========================================
GET      /security/ingestion/api_keys                 manage-ingestion-api-keys
POST     /security/ingestion/api_keys                 manage-ingestion-api-keys
DELETE   /security/ingestion/api_keys/{id}            manage-ingestion-api-keys
POST     /security/ingestion/authorize                manage-ingestion-api-keys
GET      /server/info                                 (any authenticated caller)
GET      /security/tokens                             manage-service-tokens
POST     /security/tokens                             manage-service-tokens
DELETE   /security/tokens/{id}                        manage-service-tokens
GET      /user/authorization/for                      (evaluates the caller's own permissions)
=======  ==========================================  ===========================================

Authentication: exactly one credential header per request. ``X-API-Token`` equal to
``api_token``, ``X-API-Key`` equal to ``service_token``, or ``X-API-ServiceBearer`` equal to
``service_bearer`` (when configured) authenticate as an administrator holding every permission.
A service token created through the API (or seeded) authenticates through ``X-API-Key`` while it
is neither expired nor deleted, with the permissions of its roles (:data:`ROLE_PERMISSIONS`).
Expiry is judged by the injected ``clock``: a key whose expiration is not after "now" is expired.

Answers outside the excerpt, decided here and mirrored by the allow-list of the contract checks
in this repository's ``tests/contract/openapi.py`` (each is what the Akka-HTTP based StackState
server plausibly says; none is documented by the generated spec):

* 401 with an empty body for a missing, unknown, expired or deleted credential, and when several
  credential headers are sent at once (a client must send one; accepting the "best" of several
  would hide a client that verifies a new token while also sending its admin credential).
* 403 with an empty body when the caller lacks the operation's permission.
* 404 ``{"_type": "IngestionApiKeyNotFoundError" | "ServiceTokenNotFoundError", "message"}``
  when deleting an id that does not exist (already deleted, or never created).
* 400 ``text/plain`` in Akka-HTTP's default rejection wording for a body that is not JSON or
  misses a required field, and for a missing/malformed query parameter. 400 on
  ``/user/authorization/for`` for an unknown permission has an empty body, as documented.
* 404/405 ``text/plain`` for unknown paths and wrong methods (Akka-HTTP defaults).
* Injected faults (:meth:`Emulator.fail_next`) with a 5xx or 429 status answer the spec's
  ``GenericErrorsResponse``. :meth:`StackStateEmulator.throttle_next` does the same with a
  ``Retry-After`` header; :meth:`StackStateEmulator.garble_next` processes a request and then
  answers with an unreadable body instead (truncated JSON, a proxy's HTML page): off-contract
  on purpose.

Every logged request also gets the :func:`time.monotonic` time it was logged at
(:meth:`StackStateEmulator.timed_log`), so a test measures the spacing of retries on the
server's side rather than timing itself.

Key values are unguessable (:func:`secrets.token_urlsafe`); ids are random positive int64 below
2**53, like the ids real StackState hands out (e.g. 250558013078953). Names are not unique: the
real API allows duplicates, so the emulator does too. Listing never returns a value.

Tests reach state directly through :meth:`StackStateEmulator.seed_key`,
:meth:`~StackStateEmulator.keys`, :meth:`~StackStateEmulator.value_of`,
:meth:`~StackStateEmulator.issued_values`, :meth:`~StackStateEmulator.expire_key`,
:meth:`~StackStateEmulator.set_expiration` and :meth:`~StackStateEmulator.delete`; all of them
hold :attr:`Emulator.lock`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from rotator_sandbox._server import Emulator, LoggedRequest, Request, Response

KeyKind = Literal["service-token", "ingestion-api-key"]

#: Every kind the emulator stores, in a stable order.
KEY_KINDS: Final[tuple[KeyKind, ...]] = ("service-token", "ingestion-api-key")

#: Permissions the emulator knows; ``/user/authorization/for`` answers 400 for any other.
KNOWN_PERMISSIONS: Final = frozenset(
    {
        "access-explore",
        "access-log-data",
        "access-topic-data",
        "execute-component-actions",
        "execute-scripts",
        "manage-annotations",
        "manage-event-handlers",
        "manage-ingestion-api-keys",
        "manage-monitors",
        "manage-service-tokens",
        "manage-stackpacks",
        "manage-topology-elements",
        "read-metrics",
        "read-permissions",
        "read-settings",
        "read-stackpacks",
        "read-traces",
        "update-metrics",
        "update-permissions",
        "update-settings",
    }
)

#: What a role grants. ``update-metrics`` is the ingestion permission; roles not listed grant
#: nothing (a token with an unknown role authenticates but is forbidden everything).
ROLE_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "stackstate-ingest-telemetry": frozenset({"update-metrics"}),
    "suse-observability-ingest-all": frozenset({"update-metrics"}),
    "stackstate-admin": KNOWN_PERMISSIONS,
    "stackstate-power-user": KNOWN_PERMISSIONS,
}

#: The credential headers, in the order they are looked at.
_AUTH_HEADERS: Final = ("X-API-Token", "X-API-Key", "X-API-ServiceBearer")

#: Ids are random positive int64 values kept below 2**53 so JSON clients in any language keep
#: them exact, and above 10**14 so they look like real StackState ids.
_ID_MIN: Final = 10**14
_ID_MAX: Final = 2**53

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_TEXT_PLAIN: Final = "text/plain; charset=UTF-8"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (the API's timestamp unit)."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return int(moment.timestamp() * 1000)


@dataclass
class _StoredKey:
    """One key as the emulator stores it (the value is never listed)."""

    kind: KeyKind
    id: int
    name: str
    value: str
    last_update: int
    expiration: int | None = None
    description: str | None = None
    roles: tuple[str, ...] = ()
    dedicated_subject: str | None = None

    def metadata(self) -> dict[str, Any]:
        """The key as the list endpoint shows it."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.expiration is not None:
            out["expiration"] = self.expiration
        if self.kind == "service-token":
            out["roles"] = list(self.roles)
            if self.dedicated_subject is not None:
                out["dedicatedSubject"] = self.dedicated_subject
        out["lastUpdateTimestamp"] = self.last_update
        return out

    def expired(self, now_ms: int) -> bool:
        """Whether the key no longer authenticates at ``now_ms``."""
        return self.expiration is not None and self.expiration <= now_ms


@dataclass
class _AnswerFault:
    """A fault that changes the answer: ``throttle`` (unprocessed, with Retry-After) or
    ``garble`` (processed, then answered with ``raw`` instead of the real body)."""

    kind: Literal["throttle", "garble"]
    method: str
    pattern: re.Pattern[str]
    remaining: int | None
    status: int | None = None
    retry_after: str = ""
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class _Caller:
    """Who sent a request, after authentication."""

    permissions: frozenset[str]
    token_id: int | None = None  # the created/seeded service token, None for admin credentials


@dataclass
class _Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Callable[[Request, re.Match[str]], Response]] = field(default_factory=dict)


class _BadRequestError(Exception):
    """A request the server rejects with Akka-HTTP's default 400 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


#: Every value any emulator of this process handed out, in order (a test suite's leak guard
#: searches its outputs for them; see :func:`issued_in_process`).
_ISSUED_IN_PROCESS: list[str] = []


def issued_in_process() -> tuple[str, ...]:
    """Every key value any StackState emulator of this process handed out, oldest first."""
    return tuple(_ISSUED_IN_PROCESS)


class StackStateEmulator(Emulator):
    """The StackState API paths of the excerpt, in memory, with faithful status codes and bodies."""

    name = "stackstate"

    #: What ``/server/info`` reports.
    version: Final = {
        "major": 6,
        "minor": 0,
        "patch": 0,
        "diff": "",
        "commit": "0000000sandbox",
        "isDev": False,
    }
    platform_version: Final = "2.3.0"

    def __init__(
        self,
        *,
        service_token: str = "sandbox-service-token",  # noqa: S107 - fake sandbox default
        api_token: str = "sandbox-api-token",  # noqa: S107 - fake sandbox default
        service_bearer: str | None = None,
        receiver_api_key: str | None = None,
        api_path: str = "/api",
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        deployment_mode: Literal["SelfHosted", "Saas"] = "SelfHosted",
    ) -> None:
        super().__init__(host=host, port=port, tls=tls)
        self.service_token = service_token
        self.api_token = api_token
        self.service_bearer = service_bearer
        self.receiver_api_key = receiver_api_key
        stripped = api_path.strip("/")
        self.api_path = f"/{stripped}" if stripped else ""
        self.deployment_mode = deployment_mode
        self._clock = clock or _utc_now
        self._keys: dict[KeyKind, dict[int, _StoredKey]] = {kind: {} for kind in KEY_KINDS}
        self._issued: list[str] = []
        self._routes = self._build_routes()
        self._answer_faults: list[_AnswerFault] = []
        self._log_times: list[float] = []

    # -- lifecycle (narrowed return types, so ``with StackStateEmulator() as e`` is typed) -----

    def start(self) -> StackStateEmulator:
        """Bind and serve in a daemon thread; returns self."""
        super().start()
        return self

    def __enter__(self) -> StackStateEmulator:
        return self.start()

    # -- clock -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current time (the injected clock)."""
        return self._clock()

    def _now_ms(self) -> int:
        return to_epoch_ms(self._clock())

    # -- in-process helpers for tests --------------------------------------------------------

    def seed_key(
        self,
        kind: KeyKind,
        name: str,
        *,
        expiration: datetime | None,
        roles: Sequence[str] = (),
        description: str | None = None,
    ) -> tuple[int, str]:
        """Create a key without HTTP (any expiration, even past); returns ``(id, value)``."""
        if kind == "ingestion-api-key" and roles:
            raise ValueError("ingestion API keys carry no roles")
        with self.lock:
            key = self._store(
                kind,
                name,
                expiration=None if expiration is None else to_epoch_ms(expiration),
                description=description,
                roles=tuple(roles),
            )
            return key.id, key.value

    def keys(self, kind: KeyKind) -> list[dict[str, Any]]:
        """Metadata of every stored key of ``kind``, exactly as the list endpoint returns it."""
        with self.lock:
            return [key.metadata() for key in self._keys[kind].values()]

    def value_of(self, kind: KeyKind, key_id: int) -> str:
        """The value of a stored key; ``KeyError`` when there is no such key."""
        with self.lock:
            return self._keys[kind][key_id].value

    def issued_values(self) -> list[str]:
        """Every secret value ever handed out or seeded (deleted keys included), oldest first."""
        with self.lock:
            return list(self._issued)

    def expire_key(self, kind: KeyKind, key_id: int) -> None:
        """Make a stored key expire now (by the clock); ``KeyError`` when there is no such key."""
        with self.lock:
            key = self._keys[kind][key_id]
            key.expiration = self._now_ms()

    def set_expiration(self, kind: KeyKind, key_id: int, moment: datetime) -> None:
        """Move a stored key's expiration to an aware ``moment`` (a benchmark makes keys due);
        ``KeyError`` when there is no such key."""
        with self.lock:
            self._keys[kind][key_id].expiration = to_epoch_ms(moment)

    def delete(self, kind: KeyKind, key_id: int) -> None:
        """Delete a stored key without HTTP; ``KeyError`` when there is no such key."""
        with self.lock:
            del self._keys[kind][key_id]

    def _store(
        self,
        kind: KeyKind,
        name: str,
        *,
        expiration: int | None,
        description: str | None = None,
        roles: tuple[str, ...] = (),
        dedicated_subject: str | None = None,
    ) -> _StoredKey:
        """Create and remember a key; the caller holds the lock."""
        key_id = secrets.randbelow(_ID_MAX - _ID_MIN) + _ID_MIN
        while any(key_id in keys for keys in self._keys.values()):
            key_id = secrets.randbelow(_ID_MAX - _ID_MIN) + _ID_MIN
        # Real service tokens carry the ``svctok-`` prefix; ingestion keys are bare random text.
        prefix = "svctok-" if kind == "service-token" else ""
        key = _StoredKey(
            kind=kind,
            id=key_id,
            name=name,
            value=prefix + secrets.token_urlsafe(24),
            last_update=self._now_ms(),
            expiration=expiration,
            description=description,
            roles=roles,
            dedicated_subject=dedicated_subject,
        )
        self._keys[kind][key_id] = key
        self._issued.append(key.value)
        _ISSUED_IN_PROCESS.append(key.value)
        return key

    # -- faults that change the answer and a timed request log --------------------------------

    def throttle_next(
        self,
        method: str,
        path_pattern: str,
        *,
        retry_after: str,
        status: int = 429,
        count: int | None = 1,
    ) -> None:
        """Answer the next ``count`` matching requests (None: until cleared) with ``status``
        (429 or 503), the API's error body and ``Retry-After: <retry_after>``, unprocessed."""
        if status not in (429, 503):
            raise ValueError("Retry-After belongs to 429 and 503 answers")
        self._arm_answer(
            _AnswerFault(
                "throttle",
                method.upper(),
                re.compile(path_pattern),
                count,
                status=status,
                retry_after=retry_after,
            )
        )

    def garble_next(
        self,
        method: str,
        path_pattern: str,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        status: int | None = None,
        count: int | None = 1,
    ) -> None:
        """Process the next ``count`` matching requests (state changes happen), then answer
        ``raw`` instead of the real body: by default the real body cut in half (truncated
        JSON). ``status`` replaces the real status when given; ``content_type`` is sent as is
        (``text/html`` for a proxy's error page)."""
        self._arm_answer(
            _AnswerFault(
                "garble",
                method.upper(),
                re.compile(path_pattern),
                count,
                status=status,
                raw=raw,
                content_type=content_type,
            )
        )

    def clear_faults(self) -> None:
        """Disarm every fault, those that change answers included."""
        super().clear_faults()
        with self.lock:
            self._answer_faults.clear()

    def _arm_answer(self, fault: _AnswerFault) -> None:
        with self.lock:
            self._answer_faults.append(fault)

    def _take_answer_fault(self, method: str, path: str) -> _AnswerFault | None:
        with self.lock:
            for fault in self._answer_faults:
                if fault.method in ("*", method) and fault.pattern.fullmatch(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._answer_faults.remove(fault)
                    return fault
        return None

    def record(self, request: Request, response: Response | None) -> None:
        """Append one line to the request log, remembering when (monotonic seconds)."""
        with self.lock:
            super().record(request, response)
            self._log_times.append(time.monotonic())

    def clear_log(self) -> None:
        """Forget the request log."""
        with self.lock:
            super().clear_log()
            self._log_times.clear()

    def timed_log(self) -> list[tuple[float, LoggedRequest]]:
        """Every logged request with the :func:`time.monotonic` time it was logged, oldest first."""
        with self.lock:
            return list(zip(self._log_times, self.log, strict=True))

    # -- error bodies ------------------------------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        """The API's own body for ``status``: see the module docstring for each choice."""
        if status >= 500 or status == 429:
            return Response(
                status,
                {
                    "_type": "ErrorsResponse",
                    "errors": [{"_type": "InternalError", "message": message}],
                    "trackingKey": uuid.uuid4().hex,
                    "serverTimestamp": self._now_ms(),
                },
            )
        if status in (401, 403):
            return Response(status)
        if status == 404:
            return Response(status, {"_type": "NotFoundError", "message": message})
        if status == 400:
            return _text(400, f"The request content was malformed:\n{message}")
        return _text(status, message)

    # -- routing -----------------------------------------------------------------------------

    def _build_routes(self) -> list[_Route]:
        int_id = r"(?P<id>-?[0-9]+)"
        return [
            _Route(
                re.compile(r"/security/ingestion/api_keys"),
                {"GET": self._list_ingestion_keys, "POST": self._create_ingestion_key},
            ),
            _Route(
                re.compile(rf"/security/ingestion/api_keys/{int_id}"),
                {"DELETE": self._delete_ingestion_key},
            ),
            _Route(re.compile(r"/security/ingestion/authorize"), {"POST": self._authorize}),
            _Route(re.compile(r"/server/info"), {"GET": self._server_info}),
            _Route(
                re.compile(r"/security/tokens"),
                {"GET": self._list_tokens, "POST": self._create_token},
            ),
            _Route(re.compile(rf"/security/tokens/{int_id}"), {"DELETE": self._delete_token}),
            _Route(re.compile(r"/user/authorization/for"), {"GET": self._authorization_for}),
        ]

    def handle(self, request: Request) -> Response:
        """Apply a fault that changes the answer (see :meth:`throttle_next`,
        :meth:`garble_next`), else answer as the API does (:meth:`route`)."""
        fault = self._take_answer_fault(request.method, request.path)
        if fault is None:
            return self.route(request)
        if fault.kind == "throttle":
            assert fault.status is not None
            answer = self.error_response(fault.status, "injected fault")
            answer.headers["Retry-After"] = fault.retry_after
            return answer
        real = self.route(request)
        encoded = real.encoded()
        return Response(
            fault.status if fault.status is not None else real.status,
            raw=fault.raw if fault.raw is not None else encoded[: len(encoded) // 2],
            content_type=fault.content_type,
        )

    def route(self, request: Request) -> Response:
        """Route one request: 404 unknown path, 405 wrong method, then the operation."""
        path = request.path
        if self.api_path:
            if not path.startswith(self.api_path + "/"):
                return _not_found()
            path = path[len(self.api_path) :]
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler = route.handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(route.handlers)
                return _text(
                    405,
                    f"HTTP method not allowed, supported methods: {allowed}",
                    headers={"Allow": allowed},
                )
            try:
                return handler(request, match)
            except _BadRequestError as exc:
                return _text(400, exc.message)
        return _not_found()

    # -- authentication ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> _Caller | None:
        """The caller behind the request's one credential header, or None (answer 401)."""
        presented = [(h, request.header(h)) for h in _AUTH_HEADERS if request.header(h)]
        if len(presented) != 1:
            return None
        header, value = presented[0]
        assert value is not None
        admin = _Caller(permissions=KNOWN_PERMISSIONS)
        if header == "X-API-Token":
            return admin if _same(value, self.api_token) else None
        if header == "X-API-ServiceBearer":
            if self.service_bearer is not None and _same(value, self.service_bearer):
                return admin
            return None
        if _same(value, self.service_token):
            return admin
        now_ms = self._now_ms()
        with self.lock:
            for key in self._keys["service-token"].values():
                if _same(value, key.value):
                    if key.expired(now_ms):
                        return None
                    granted: frozenset[str] = frozenset()
                    for role in key.roles:
                        granted |= ROLE_PERMISSIONS.get(role, frozenset())
                    return _Caller(permissions=granted, token_id=key.id)
        return None

    def _require(self, request: Request, permission: str | None) -> Response | None:
        """None when the caller may proceed, else the 401/403 answer."""
        caller = self._authenticate(request)
        if caller is None:
            return Response(401)
        if permission is not None and permission not in caller.permissions:
            return Response(403)
        return None

    # -- ingestion API keys ------------------------------------------------------------------

    def _list_ingestion_keys(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-ingestion-api-keys")) is not None:
            return denied
        return Response(200, self.keys("ingestion-api-key"))

    def _create_ingestion_key(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-ingestion-api-keys")) is not None:
            return denied
        body = _json_object(request)
        name = _field(body, "name", str, required=True)
        description = _field(body, "description", str)
        expiration = _int64_field(body, "expiration")
        with self.lock:
            if expiration is not None and expiration <= self._now_ms():
                return Response(
                    400,
                    {
                        "_type": "IngestionApiKeyInvalidExpiryError",
                        "message": "Expiration date should be in the future",
                    },
                )
            key = self._store(
                "ingestion-api-key", name, expiration=expiration, description=description
            )
            answer = key.metadata()
            answer["apiKey"] = key.value
        return Response(200, answer)

    def _delete_ingestion_key(self, request: Request, match: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-ingestion-api-keys")) is not None:
            return denied
        key_id = _path_id(match)
        with self.lock:
            if self._keys["ingestion-api-key"].pop(key_id, None) is None:
                return Response(
                    404,
                    {
                        "_type": "IngestionApiKeyNotFoundError",
                        "message": f"Ingestion Api Key with id {key_id} not found",
                    },
                )
        return Response(204)

    def _authorize(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-ingestion-api-keys")) is not None:
            return denied
        with_receiver = _bool_query(request, "withReceiverKey")
        body = _json_object(request)
        api_key = _field(body, "apiKey", str, required=True)
        assert api_key is not None
        if (
            with_receiver
            and self.receiver_api_key is not None
            and _same(api_key, self.receiver_api_key)
        ):
            return Response(204)
        now_ms = self._now_ms()
        with self.lock:
            for key in self._keys["ingestion-api-key"].values():
                if _same(api_key, key.value) and not key.expired(now_ms):
                    return Response(204)
        return Response(403)

    # -- server info -------------------------------------------------------------------------

    def _server_info(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, None)) is not None:
            return denied
        return Response(
            200,
            {
                "version": dict(self.version),
                "deploymentMode": self.deployment_mode,
                "platformVersion": self.platform_version,
            },
        )

    # -- service tokens ----------------------------------------------------------------------

    def _list_tokens(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-service-tokens")) is not None:
            return denied
        return Response(200, self.keys("service-token"))

    def _create_token(self, request: Request, _: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-service-tokens")) is not None:
            return denied
        body = _json_object(request)
        name = _field(body, "name", str, required=True)
        roles_raw = _field(body, "roles", list, required=True)
        assert name is not None
        assert roles_raw is not None
        if not all(isinstance(role, str) for role in roles_raw):
            raise _BadRequestError(
                "The request content was malformed:\n"
                "Expected String at DownField(roles), got a non-string element"
            )
        expiry = _int64_field(body, "expiryDate")
        subject = _field(body, "dedicatedSubject", str)
        with self.lock:
            if expiry is not None and expiry <= self._now_ms():
                return Response(
                    400,
                    {
                        "_type": "ServiceTokenInvalidExpiryError",
                        "message": "Expiry date should be in the future",
                    },
                )
            key = self._store(
                "service-token",
                name,
                expiration=expiry,
                roles=tuple(roles_raw),
                dedicated_subject=subject,
            )
            answer: dict[str, Any] = {"name": key.name, "token": key.value}
            if key.expiration is not None:
                answer["expiration"] = key.expiration
        return Response(200, answer)

    def _delete_token(self, request: Request, match: re.Match[str]) -> Response:
        if (denied := self._require(request, "manage-service-tokens")) is not None:
            return denied
        key_id = _path_id(match)
        with self.lock:
            if self._keys["service-token"].pop(key_id, None) is None:
                return Response(
                    404,
                    {
                        "_type": "ServiceTokenNotFoundError",
                        "message": f"Service token with id {key_id} not found",
                    },
                )
        return Response(204)

    # -- authorization check -----------------------------------------------------------------

    def _authorization_for(self, request: Request, _: re.Match[str]) -> Response:
        caller = self._authenticate(request)
        if caller is None:
            return Response(401)
        permission = request.query_one("permission")
        if permission is None:
            raise _BadRequestError("Request is missing required query parameter 'permission'")
        if permission not in KNOWN_PERMISSIONS:
            return Response(400)
        if permission in caller.permissions:
            return Response(204)
        return Response(403)


# -- helpers --------------------------------------------------------------------------------


def _same(presented: str, expected: str) -> bool:
    """Constant-time comparison of two credential strings."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def _text(status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, raw=message.encode(), content_type=_TEXT_PLAIN, headers=dict(headers or {})
    )


def _not_found() -> Response:
    return _text(404, "The requested resource could not be found.")


def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or Akka-HTTP's 400 rejection."""
    try:
        body = request.json()
    except ValueError as exc:
        raise _BadRequestError(
            f"The request content was malformed:\n{type(exc).__name__}: body is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise _BadRequestError("The request content was malformed:\nExpected a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    """One field of a JSON object; null counts as absent (circe's Option decoding)."""
    value = body.get(name)
    if value is None:
        if required:
            raise _BadRequestError(
                f"The request content was malformed:\nAttempt to decode value on failed cursor: "
                f"DownField({name})"
            )
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _BadRequestError(
            f"The request content was malformed:\nExpected {kind.__name__} at DownField({name})"
        )
    return value


def _int64_field(body: dict[str, Any], name: str) -> int | None:
    value = _field(body, name, int)
    if value is not None and not _INT64_MIN <= value <= _INT64_MAX:
        raise _BadRequestError(
            f"The request content was malformed:\nExpected Long at DownField({name})"
        )
    return value  # type: ignore[no-any-return]


def _path_id(match: re.Match[str]) -> int:
    # An id outside int64 cannot exist, so it simply finds nothing (404 like any unknown id).
    return int(match.group("id"))


def _bool_query(request: Request, name: str) -> bool:
    raw = request.query_one(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise _BadRequestError(
        f"The query parameter '{name}' was malformed:\n'{raw}' is not a valid Boolean"
    )
