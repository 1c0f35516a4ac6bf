"""The StackState key API's shapes: paths, timestamps, request bodies and parsed answers.

Pure functions over JSON; an answer that breaks the API contract raises
:class:`~rotator.errors.StackStateProtocolError` naming the operation and the field, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import httpx

from rotator.errors import StackStateError, StackStateProtocolError, StackStateServerError
from rotator.keytypes import KEY_KINDS, ApiKey, KeyKind
from rotator.secrets import Secret

#: The permission a key needs to ingest data; what verifying a service token checks.
INGEST_PERMISSION: Final = "update-metrics"

_COLLECTIONS: Final[Mapping[KeyKind, str]] = {
    KeyKind.SERVICE_TOKEN: "/security/tokens",
    KeyKind.INGESTION_API_KEY: "/security/ingestion/api_keys",
}
_AUTHORIZE_PATH: Final = "/security/ingestion/authorize"
_AUTHORIZATION_FOR_PATH: Final = "/user/authorization/for"
_SERVER_INFO_PATH: Final = "/server/info"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ServerInfo:
    """What ``/server/info`` says about the StackState server."""

    #: ``major.minor.patch``
    version: str
    #: ``Saas`` or ``SelfHosted``.
    deployment_mode: str
    platform_version: str | None


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


def _check_kind(kind: str) -> KeyKind:
    """``kind`` as a :class:`KeyKind`; ValueError for anything else."""
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {kind!r}; expected one of {', '.join(KEY_KINDS)}")
    return KeyKind(kind)


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
