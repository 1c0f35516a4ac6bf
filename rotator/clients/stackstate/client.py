"""The StackState key API client: list, create, delete and verify both key kinds.

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

Learning ids costs one list per kind for a whole run, not one per create: :meth:`start_create`
sends the create (with every rule above for an unknown outcome) and returns a
:class:`PendingKey`; :meth:`finish_creates` then lists each kind once and settles every pending
key of the run by its unique name, under the same rules. :meth:`create_key` is the two for one key.

A DELETE answered 404 after an earlier attempt of the same call may have reached the server
counts as success: that earlier attempt deleted the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import structlog

from rotator.clients.stackstate.api import (
    _AUTHORIZATION_FOR_PATH,
    _AUTHORIZE_PATH,
    _COLLECTIONS,
    _SERVER_INFO_PATH,
    INGEST_PERMISSION,
    ServerInfo,
    _check_kind,
    _contract,
    _create_body,
    _CreateAnswer,
    _int,
    _json,
    _parse_key,
    _read_create_answer,
    _same_kind,
)
from rotator.clients.stackstate.errors import (
    _identifier,
    _is_transient,
    _may_have_reached_server,
    _may_still_be_in_flight,
)
from rotator.clients.stackstate.transport import _HEADER_VALUE, StackStateTransport, _CreateNotDone
from rotator.errors import (
    AmbiguousCreateError,
    RotatorError,
    StackStateError,
    StackStateNotFound,
    StackStateProtocolError,
)
from rotator.keytypes import ApiKey, CreatedKey, KeyKind, PendingKey, VerifyResult
from rotator.secrets import Secret

log = structlog.get_logger(__name__)


class StackStateClient(StackStateTransport):
    """A typed client of the StackState key API; use as a context manager or call close().

    Built with the keyword arguments of :class:`StackStateTransport` (base URL, one credential,
    CA file, timeout, retry bounds); ``rotator.wiring.build_stackstate_client`` builds it from
    the ``stackstate:`` configuration section.
    """

    # -- public calls ----------------------------------------------------------------------

    def list_keys(self, kind: KeyKind) -> list[ApiKey]:
        """Every key of ``kind`` (metadata only); retried on transient failures."""
        kind = _check_kind(kind)
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
        kind = _check_kind(kind)
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
        docstring). Several creates in a row: :meth:`start_create` each, then one
        :meth:`finish_creates`.
        """
        pending = self.start_create(
            kind,
            name,
            expiration=expiration,
            roles=roles,
            description=description,
            dedicated_subject=dedicated_subject,
        )
        [outcome] = self.finish_creates([pending])
        if isinstance(outcome, RotatorError):
            raise outcome
        return outcome

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
        """Send the create of :meth:`create_key` (same arguments and rules for an unknown
        outcome) and return the key whose id :meth:`finish_creates` learns."""
        kind = _check_kind(kind)
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
        if answer.key is not None and answer.key.name != name:
            self._delete_all(operation, kind, answer.key.name, [answer.key.id], cause=None)
            _contract(operation, "the created key carries another name; it was deleted")
        return PendingKey(kind, name, answer.value, operation, answer.key)

    def finish_creates(self, pending: Sequence[PendingKey]) -> list[CreatedKey | RotatorError]:
        """Learn the ids of keys just created: one list per kind for all of them.

        Each result is the created key with its value, or (service tokens) the
        :class:`~rotator.errors.AmbiguousCreateError` that says why its id cannot be known: the
        listing failed, or no key or several keys carry its name (see the module docstring). The
        value of such a key is discarded and nothing is deleted; the sweep deletes what no
        target references. Never raises for one key's outcome.
        """
        listings: dict[KeyKind, dict[str, list[ApiKey]] | StackStateError] = {}
        for kind in dict.fromkeys(p.kind for p in pending):
            try:
                by_name: dict[str, list[ApiKey]] = {}
                for key in self.list_keys(kind):
                    by_name.setdefault(key.name, []).append(key)
                listings[kind] = by_name
            except StackStateError as list_error:
                listings[kind] = list_error
        outcomes: list[CreatedKey | RotatorError] = []
        for item in pending:
            listing = listings[item.kind]
            try:
                if item.kind == "service-token":
                    outcomes.append(self._finish_service_token(item, listing))
                else:
                    outcomes.append(self._finish_ingestion_key(item, listing))
            except AmbiguousCreateError as ambiguous:
                outcomes.append(ambiguous)
        return outcomes

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
        kind = _check_kind(kind)
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

    def _finish_service_token(
        self, item: PendingKey, listing: Mapping[str, list[ApiKey]] | StackStateError
    ) -> CreatedKey:
        """The id of a token just created (the create answer holds none), found by its name."""
        operation, name, value = item.operation, item.name, item.value
        if isinstance(listing, StackStateError):
            raise AmbiguousCreateError(
                f"{operation}: created, but listing to find its id failed ({listing.message}); "
                "the value is discarded and the next run's sweep deletes the key",
                status=listing.status,
            ) from listing
        found = listing.get(name, [])
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
        raise self._ambiguous_name(operation, KeyKind.SERVICE_TOKEN, name, ids, status=None)

    def _finish_ingestion_key(
        self, item: PendingKey, listing: Mapping[str, list[ApiKey]] | StackStateError
    ) -> CreatedKey:
        operation, name, key, value = item.operation, item.name, item.key, item.value
        assert key is not None  # _read_create_answer parses the key of an ingestion create
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
        if isinstance(listing, StackStateError):
            log.warning(
                "stackstate.create_lookup_failed",
                operation=operation,
                key_name=name,
                error=type(listing).__name__,
            )
        else:
            strays = [k.id for k in listing.get(name, []) if k.id != key.id]
            if strays:
                log.warning(
                    "stackstate.create_name_shared",
                    operation=operation,
                    key_name=name,
                    key_id=key.id,
                    other_ids=sorted(strays),
                )
        return CreatedKey(key, value)
