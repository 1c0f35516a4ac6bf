"""Kubernetes ``Status`` failure bodies, built the way the API server builds them.

The constructors mirror ``k8s.io/apimachinery/pkg/api/errors`` (``NewNotFound``,
``NewAlreadyExists``, ``NewConflict``, ``NewForbidden``, ``NewInvalid``, ``NewBadRequest``, ...):
the message formats, the ``reason`` strings and the ``details`` block are theirs. Note the quirk
the real server has and clients rely on: ``details.kind`` holds the *resource* (``secrets``,
``deployments``) for NotFound/AlreadyExists/Conflict/Forbidden, but the *kind* (``Secret``) for
Invalid.

Field errors follow ``k8s.io/apimachinery/pkg/util/validation/field``: a cause carries the
``FieldValue*`` type, the field path and the error body (``Invalid value: "x": detail``), and the
Status message aggregates ``<field>: <body>`` (one error plainly, several as ``[a, b]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Status reason per HTTP code, for failures that have no more specific constructor.
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

#: The message the server appends to a Conflict on a stale ``resourceVersion``.
OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

_FIELD_TYPE_TEXT = {
    "FieldValueRequired": "Required value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueTooLong": "Too long",
    "FieldValueNotFound": "Not found",
}
_NO_VALUE_TYPES = {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"}
_OMIT = object()


def go_value(value: Any) -> str:
    """Format a bad value as Go's ``field.Error`` does: strings quoted, numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    """One validation error on one field (``field.Error``)."""

    type: str
    field: str
    value: Any = _OMIT
    detail: str = ""

    def body(self) -> str:
        """The error without its field path (``ErrorBody``)."""
        text = _FIELD_TYPE_TEXT[self.type]
        if self.type not in _NO_VALUE_TYPES and self.value is not _OMIT:
            text = f"{text}: {go_value(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        """``field.Required``."""
        return cls("FieldValueRequired", path, detail=detail)

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        """``field.Invalid``."""
        return cls("FieldValueInvalid", path, value, detail)

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        """``field.Forbidden``."""
        return cls("FieldValueForbidden", path, detail=detail)


@dataclass
class ApiError(Exception):
    """A failure answered as a ``Status`` body; raise it anywhere in request handling."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        """The ``Status`` object, keys in the order the API server writes them."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # StatusReasonUnknown is "" and omitted, as Go's omitempty does
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(group: str, kind: str, name: str = "", **extra: Any) -> dict[str, Any]:
    """``StatusDetails`` with Go's omitempty: empty name/group are left out."""
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    details.update(extra)
    return details


def qualified(group: str, resource: str) -> str:
    """``GroupResource.String()``: ``secrets`` or ``deployments.apps``."""
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    """``NewNotFound``: ``secrets "foo" not found``."""
    return ApiError(
        404,
        "NotFound",
        f"{qualified(group, resource)} {json.dumps(name)} not found",
        _details(group, resource, name),
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    """``NewAlreadyExists``: ``secrets "foo" already exists``."""
    return ApiError(
        409,
        "AlreadyExists",
        f"{qualified(group, resource)} {json.dumps(name)} already exists",
        _details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiError:
    """``NewConflict``: ``Operation cannot be fulfilled on secrets "foo": <why>``."""
    return ApiError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {qualified(group, resource)} {json.dumps(name)}: {why}",
        _details(group, resource, name),
    )


def forbidden(
    group: str,
    resource: str,
    name: str,
    *,
    user: str,
    verb: str,
    namespace: str,
    subresource: str = "",
) -> ApiError:
    """RBAC denial as ``responsewriters.Forbidden`` writes it (``NewForbidden`` + reason)."""
    combined = f"{resource}/{subresource}" if subresource else resource
    scope = f"in the namespace {json.dumps(namespace)}" if namespace else "at the cluster scope"
    why = (
        f"User {json.dumps(user)} cannot {verb} resource {json.dumps(combined)} "
        f"in API group {json.dumps(group)} {scope}"
    )
    target = qualified(group, resource)
    message = (
        f"{target} {json.dumps(name)} is forbidden: {why}"
        if name
        else f"{target} is forbidden: {why}"
    )
    return ApiError(403, "Forbidden", message, _details(group, resource, name))


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """``NewInvalid``: 422 with one cause per field error; ``details.kind`` is the kind."""
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    target = f"{kind}.{group}" if group else kind
    if len(errors) == 1:
        aggregate = str(errors[0])
    else:
        aggregate = "[" + ", ".join(str(e) for e in errors) + "]"
    return ApiError(
        422,
        "Invalid",
        f"{target} {json.dumps(name)} is invalid: {aggregate}",
        _details(group, kind, name, causes=causes),
    )


def bad_request(message: str) -> ApiError:
    """``NewBadRequest``: 400 without details."""
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    """What authentication failure looks like: 401 ``Unauthorized``."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(group: str, resource: str, action: str) -> ApiError:
    """``NewMethodNotSupported``."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"{action} is not supported on resources of kind {json.dumps(qualified(group, resource))}",
        _details(group, resource),
    )


def page_not_found() -> ApiError:
    """The 404 for a path no API serves."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def unsupported_media_type(accepted: list[str], detail: str = "") -> ApiError:
    """415 for a body in a format the endpoint does not take (``detail``: emulator's reason)."""
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    if detail:
        message += f" ({detail})"
    return ApiError(415, "UnsupportedMediaType", message, None)


def expired(message: str) -> ApiError:
    """``NewResourceExpired`` (410), e.g. a watch from a compacted resourceVersion."""
    return ApiError(410, "Expired", message)


def generic(code: int, message: str) -> ApiError:
    """A failure for an arbitrary code with the matching reason (used for injected faults)."""
    headers = {"Retry-After": "1"} if code in (429, 503) else {}
    return ApiError(code, REASONS.get(code, ""), message, None, headers)
