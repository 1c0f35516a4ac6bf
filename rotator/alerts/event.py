"""The alert: one frozen record per event, and the JSON document every hook builds on.

:class:`AlertEvent` names the events (the ``events:`` of each hook in the configuration lists
them). An :class:`Alert` says what happened (``event``), to which managed key, in which step and
with which error. Hooks do not read its fields directly: they build their bodies from
:meth:`Alert.to_document`, whose strings have all passed through :func:`rotator.secrets.redact`
(defence in depth for invariant I4: a key value that slipped into an error text is masked before
it can leave the process).

The document (the body of the ``webhook`` hook, the standard input of the ``command`` hook)::

    {
      "source":      "stackstate-key-rotator",
      "event":       "rotation_failed",        # rotation_failed | key_expiring | key_expired |
                                               # switch_timeout | config_invalid | recovered |
                                               # rotation_succeeded | emergency_rotation
      "severity":    "error",                  # critical | error | warning | info
      "managed_key": "agent-prod-eu",          # null for config_invalid
      "kind":        "service-token",          # service-token | ingestion-api-key | null
      "key_id":      12345,                    # the StackState key concerned, or null
      "key_name":    "agent-prod-eu-20260101T000000Z",
      "expires_at":  "2026-02-01T00:00:00Z",   # RFC 3339 (UTC) or null
      "step":        "push",                   # preflight | observe | create | verify | push |
                                               # restart | switch | revoke | sweep | config |
                                               # null
      "category":    "retry",                  # retry | fix-config | fix-permissions | wait |
                                               # human | null: what to do about the failure
      "error_type":  "TargetUnavailable",      # the error class or condition, or null
      "error":       "target vault:secret/agent: ...",   # or null
      "run_id":      "3f2a9c0e1b7d",
      "timestamp":   "2026-01-25T12:00:00Z",   # RFC 3339 (UTC): when the run observed it
      "summary":     "agent-prod-eu: push failed: ...",  # one human line
      "dedup_key":   "rotator/agent-prod-eu/failure",
      "resolves":    null                      # recovered only: the class it resolves
    }

``step``, ``category`` and ``error_type`` are the fields of the run's
:class:`~rotator.engine.model.Failure` (``failure`` in ``rotate --output json``); the event is
derived from them, never from the message text in ``error`` and ``summary``.

**Event classes.** ``dedup_key`` is ``rotator/<managed_key or ->/<class>``. Failure events are
grouped into classes so that one ``recovered`` alert resolves them: ``failure``
(rotation_failed, switch_timeout), ``expiry`` (key_expiring, key_expired), ``config``
(config_invalid). A ``recovered`` alert names the class it resolves in ``resolves`` and carries
that class's dedup key, which is what PagerDuty and Alertmanager need to close the incident.
``rotation_succeeded`` is informational and has the class ``rotation``;
``emergency_rotation`` (``rotate --emergency``, severity critical) has the class ``emergency``
and, like ``rotation_succeeded``, is never deduplicated nor resolved by ``recovered``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from rotator.secrets import redact

#: The ``source`` of every alert document (and of PagerDuty events).
SOURCE: Final = "stackstate-key-rotator"

Severity = Literal["critical", "error", "warning", "info"]


class AlertEvent(StrEnum):
    """Events an alert hook can be sent."""

    ROTATION_FAILED = "rotation_failed"
    KEY_EXPIRING = "key_expiring"
    KEY_EXPIRED = "key_expired"
    SWITCH_TIMEOUT = "switch_timeout"
    CONFIG_INVALID = "config_invalid"
    RECOVERED = "recovered"
    ROTATION_SUCCEEDED = "rotation_succeeded"
    #: ``rotate --emergency`` replaced a (possibly leaked) key: severity critical, sent to every
    #: hook by default, never deduplicated; the summary says what happened to the old key.
    EMERGENCY_ROTATION = "emergency_rotation"


#: The event class of every event except ``recovered`` (whose class is its ``resolves``).
EVENT_CLASSES: Final[dict[AlertEvent, str]] = {
    AlertEvent.ROTATION_FAILED: "failure",
    AlertEvent.SWITCH_TIMEOUT: "failure",
    AlertEvent.KEY_EXPIRING: "expiry",
    AlertEvent.KEY_EXPIRED: "expiry",
    AlertEvent.CONFIG_INVALID: "config",
    AlertEvent.ROTATION_SUCCEEDED: "rotation",
    AlertEvent.EMERGENCY_ROTATION: "emergency",
}

#: Classes a ``recovered`` alert can resolve.
RESOLVABLE_CLASSES: Final = frozenset({"failure", "expiry", "config"})

_SEVERITIES: Final[dict[AlertEvent, Severity]] = {
    AlertEvent.KEY_EXPIRED: "critical",
    AlertEvent.EMERGENCY_ROTATION: "critical",
    AlertEvent.ROTATION_FAILED: "error",
    AlertEvent.SWITCH_TIMEOUT: "error",
    AlertEvent.CONFIG_INVALID: "error",
    AlertEvent.KEY_EXPIRING: "warning",
    AlertEvent.RECOVERED: "info",
    AlertEvent.ROTATION_SUCCEEDED: "info",
}


def events_of_class(event_class: str) -> tuple[AlertEvent, ...]:
    """The events grouped in ``event_class`` (what a ``recovered`` of that class resolves)."""
    return tuple(event for event, name in EVENT_CLASSES.items() if name == event_class)


def severity_of(event: AlertEvent) -> Severity:
    """The severity of an event: critical, error, warning or info."""
    return _SEVERITIES[event]


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z`` suffix (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One event about one managed key (or about the configuration), ready for any hook."""

    event: AlertEvent
    managed_key: str | None
    kind: str | None
    key_id: int | None
    key_name: str | None
    expires_at: datetime | None
    #: The rotation step concerned: preflight, observe, create, verify, push, restart,
    #: switch, revoke, sweep, config.
    step: str | None
    error: str | None
    run_id: str
    timestamp: datetime
    #: One human line.
    summary: str
    #: ``recovered`` only: the event class it resolves (failure, expiry or config).
    resolves: str | None = None
    #: What to do about the failure: retry, fix-config, fix-permissions, wait or human.
    category: str | None = None
    #: The error class or condition behind the failure (``TargetForbidden``, ``SwitchTimeout``).
    error_type: str | None = None

    def __post_init__(self) -> None:
        if self.event is AlertEvent.RECOVERED:
            if self.resolves not in RESOLVABLE_CLASSES:
                raise ValueError(
                    f"a recovered alert must resolve one of {sorted(RESOLVABLE_CLASSES)}, "
                    f"not {self.resolves!r}"
                )
        elif self.resolves is not None:
            raise ValueError(f"only a recovered alert resolves a class, not {self.event}")

    @property
    def severity(self) -> Severity:
        """critical (key_expired), error (failures), warning (key_expiring) or info."""
        return severity_of(self.event)

    @property
    def event_class(self) -> str:
        """The class this alert belongs to; for ``recovered``, the class it resolves."""
        if self.event is AlertEvent.RECOVERED:
            assert self.resolves is not None  # checked in __post_init__
            return self.resolves
        return EVENT_CLASSES[self.event]

    @property
    def dedup_key(self) -> str:
        """``rotator/<managed_key or ->/<event class>``: shared by a failure and its recovery."""
        return f"rotator/{self.managed_key or '-'}/{self.event_class}"

    def to_document(self) -> dict[str, Any]:
        """The documented JSON document (see the module docstring); every string redacted."""

        def text(value: str | None) -> str | None:
            return None if value is None else redact(value)

        return {
            "source": SOURCE,
            "event": str(self.event),
            "severity": self.severity,
            "managed_key": text(self.managed_key),
            "kind": text(self.kind),
            "key_id": self.key_id,
            "key_name": text(self.key_name),
            "expires_at": None if self.expires_at is None else rfc3339(self.expires_at),
            "step": text(self.step),
            "category": text(self.category),
            "error_type": text(self.error_type),
            "error": text(self.error),
            "run_id": redact(self.run_id),
            "timestamp": rfc3339(self.timestamp),
            "summary": redact(self.summary),
            "dedup_key": redact(self.dedup_key),
            "resolves": self.resolves,
        }
