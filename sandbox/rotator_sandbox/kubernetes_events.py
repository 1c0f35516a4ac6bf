"""Core ``v1`` Events as the API server stores, selects and validates them.

Served at ``/api/v1/namespaces/<ns>/events`` with ``create``, ``get``, ``list``, ``watch``,
``patch``, ``update`` and ``delete``, through the emulator's generic paths (404 for a missing
namespace from the NamespaceLifecycle admission, 409 ``AlreadyExists`` on a name clash, 403
from :meth:`~rotator_sandbox.kubernetes.KubernetesEmulator.forbid` rules, strategic-merge,
merge and JSON patches). What is specific to Events lives here:

- decoding: ``count`` is an ``int32``; ``firstTimestamp``/``lastTimestamp`` are ``Time``
  (RFC 3339, seconds) and ``eventTime`` a ``MicroTime`` (six fractional digits), as the Go
  decoder insists; ``involvedObject``, ``source`` and ``series`` are objects;
- validation (``ValidateEventCreate`` for requests to core ``v1``, which the server also runs
  on update): the Event's namespace must be the involved object's; an Event with ``eventTime``
  (the events.k8s.io shape written through core ``v1``) also needs ``reportingComponent``,
  ``reportingInstance`` (at most 128 characters), ``action`` and ``reason`` (at most 128) and a
  ``message`` of at most 1024 characters; the namespace must be a DNS-1123 subdomain;
- field selectors: ``involvedObject.{kind,namespace,name,uid,apiVersion,resourceVersion,
  fieldPath}``, ``reason``, ``reportingComponent``, ``source``, ``type`` (what ``kubectl
  describe`` and ``kubectl get events --field-selector`` send);
- the table ``kubectl get events`` prints (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE).

events.k8s.io/v1 is not served: it is another view of the same storage, and the rotator writes
through core ``v1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from rotator_sandbox.kubernetes_errors import FieldError

#: Length limits of ``pkg/apis/core/validation/events.go``.
REPORTING_INSTANCE_LIMIT: Final = 128
ACTION_LIMIT: Final = 128
REASON_LIMIT: Final = 128
NOTE_LIMIT: Final = 1024

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


class EventDecodeError(ValueError):
    """A field the Go structs would refuse to decode."""


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _parse_time(value: str, field: str) -> str:
    """A ``metav1.Time``: RFC 3339; stored in UTC with second precision."""
    if not _TIME.match(value):
        raise EventDecodeError(
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
            f'"{value}" as "2006" (Event.{field})'
        )
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_event(obj: dict[str, Any], parse_microtime: Callable[[Any], str]) -> None:
    """Type-check and convert an Event's fields in place (``EventDecodeError`` on a bad one)."""
    for field in ("involvedObject", "source", "series", "related"):
        value = obj.get(field)
        if value is None:
            obj.pop(field, None)
        elif not isinstance(value, dict):
            raise EventDecodeError(
                f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                f"Event.{field} of type v1.{'ObjectReference' if field != 'source' else 'Source'}"
            )
    for field in ("reason", "message", "type", "action", "reportingComponent", "reportingInstance"):
        value = obj.get(field)
        if value is None:
            obj.pop(field, None)
        elif not isinstance(value, str):
            raise EventDecodeError(
                f"json: cannot unmarshal {_go_type(value)} into Go struct field "
                f"Event.{field} of type string"
            )
    count = obj.get("count")
    if count is None:
        obj.pop("count", None)
    elif isinstance(count, bool) or not isinstance(count, int) or not -(2**31) <= count < 2**31:
        raise EventDecodeError(
            f"json: cannot unmarshal {_go_type(count)} into Go struct field Event.count of type "
            "int32"
        )
    for field in ("firstTimestamp", "lastTimestamp"):
        value = obj.get(field)
        if value is None:
            obj[field] = None
        elif not isinstance(value, str):
            raise EventDecodeError(
                f"json: cannot unmarshal {_go_type(value)} into Go struct field Event.{field} "
                "of type string"
            )
        else:
            obj[field] = _parse_time(value, field)
    event_time = obj.get("eventTime")
    if event_time is None:
        obj["eventTime"] = None
    else:
        obj["eventTime"] = parse_microtime(event_time)
    series = obj.get("series")
    if isinstance(series, dict) and series.get("lastObservedTime") is not None:
        series["lastObservedTime"] = parse_microtime(series["lastObservedTime"])
    obj.setdefault("involvedObject", {})
    obj.setdefault("source", {})
    obj.setdefault("reportingComponent", "")
    obj.setdefault("reportingInstance", "")


def validate_event(obj: dict[str, Any]) -> list[FieldError]:
    """``ValidateEventCreate`` for a request to core ``v1`` (also run on update there)."""
    errors: list[FieldError] = []
    namespace = obj["metadata"].get("namespace", "")
    involved = obj.get("involvedObject") or {}
    involved_ns = str(involved.get("namespace") or "")
    if not obj.get("eventTime"):
        if involved_ns:
            if namespace != involved_ns:
                errors.append(
                    FieldError.invalid(
                        "involvedObject.namespace", involved_ns, "does not match event.namespace"
                    )
                )
        elif namespace not in ("", "default"):
            errors.append(
                FieldError.invalid(
                    "involvedObject.namespace", involved_ns, "does not match event.namespace"
                )
            )
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            errors.append(
                FieldError.invalid(
                    "involvedObject.namespace", involved_ns, "does not match event.namespace"
                )
            )
        errors += _reporting_errors(obj)
    if namespace and not _DNS1123_SUBDOMAIN.match(namespace):
        errors.append(
            FieldError.invalid(
                "namespace",
                namespace,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        )
    return errors


def _reporting_errors(obj: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    component = str(obj.get("reportingComponent") or "")
    if not component:
        errors.append(FieldError.required("reportingComponent"))
    elif not _QUALIFIED_NAME.match(component.rsplit("/", 1)[-1]):
        errors.append(
            FieldError.invalid(
                "reportingComponent",
                component,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character",
            )
        )
    instance = str(obj.get("reportingInstance") or "")
    if not instance:
        errors.append(FieldError.required("reportingInstance"))
    elif len(instance) > REPORTING_INSTANCE_LIMIT:
        errors.append(
            FieldError.invalid(
                "reportingInstance", "", f"can have at most {REPORTING_INSTANCE_LIMIT} characters"
            )
        )
    for field, limit in (("action", ACTION_LIMIT), ("reason", REASON_LIMIT)):
        value = str(obj.get(field) or "")
        if not value:
            errors.append(FieldError.required(field))
        elif len(value) > limit:
            errors.append(FieldError.invalid(field, "", f"can have at most {limit} characters"))
    if len(str(obj.get("message") or "")) > NOTE_LIMIT:
        errors.append(
            FieldError.invalid("message", "", f"can have at most {NOTE_LIMIT} characters")
        )
    return errors


def _involved(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda o: str((o.get("involvedObject") or {}).get(field) or "")


#: Field selectors of Events (``pkg/registry/core/event/strategy.go`` ``ToSelectableFields``).
EVENT_FIELDS: Final[dict[str, Callable[[dict[str, Any]], str]]] = {
    "involvedObject.kind": _involved("kind"),
    "involvedObject.namespace": _involved("namespace"),
    "involvedObject.name": _involved("name"),
    "involvedObject.uid": _involved("uid"),
    "involvedObject.apiVersion": _involved("apiVersion"),
    "involvedObject.resourceVersion": _involved("resourceVersion"),
    "involvedObject.fieldPath": _involved("fieldPath"),
    "reason": lambda o: str(o.get("reason") or ""),
    "reportingComponent": lambda o: str(o.get("reportingComponent") or ""),
    "source": lambda o: str((o.get("source") or {}).get("component") or ""),
    "type": lambda o: str(o.get("type") or ""),
}


def last_seen(obj: dict[str, Any]) -> datetime | None:
    """When an Event was last seen: ``series.lastObservedTime``, ``lastTimestamp``,
    ``eventTime``, else its creation (what kubectl's LAST SEEN column shows)."""
    series = obj.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        obj.get("lastTimestamp"),
        obj.get("eventTime"),
        (obj.get("metadata") or {}).get("creationTimestamp"),
    ):
        if isinstance(value, str) and value:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def object_cell(obj: dict[str, Any]) -> str:
    """kubectl's OBJECT column: ``kind/name``, lower-cased kind."""
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"
