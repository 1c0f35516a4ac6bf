"""``alertmanager``: ``POST <url>/api/v2/alerts`` with a list of postable alerts.

A failure event becomes one alert::

    [{"labels": {"alertname": "StackStateKeyRotatorRotationFailed",
                 "managed_key": "agent-prod-eu",       # "-" for config_invalid
                 "event": "rotation_failed",
                 "severity": "error",                  # critical | error | warning | info
                 "source": "stackstate-key-rotator"},
      "annotations": {"summary": "...", "description": "<error, or the summary>",
                      "kind": ..., "key_id": ..., "key_name": ..., "expires_at": ...,
                      "step": ..., "category": ..., "error_type": ...,
                      "run_id": ..., "dedup_key": ...},   # only those known
      "startsAt": "<alert timestamp>",
      "endsAt": "<alert timestamp + hold>"}]

**Labels identify an alert** in Alertmanager, so they hold only what is stable for one incident
(no key id, no error text). ``endsAt`` on a firing alert is ``timestamp + hold`` (default: twice
the hook's ``repeat_interval``, within which the dispatcher sends an ongoing problem again):
without it Alertmanager would resolve the alert by itself after its ``resolve_timeout``
(5 minutes by default), long before the next re-send. If the rotator stops, the alert thus ends
on its own after ``hold``.

**Recovery.** A ``recovered`` alert posts, for every event of the class it resolves (e.g.
rotation_failed and switch_timeout for ``failure``), the same labels with ``startsAt`` and
``endsAt`` set to the alert's timestamp, which resolves the firing alert. Posting the end of an
alert that never fired is harmless.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Final

from rotator.alerts._http import post_json
from rotator.alerts.event import SOURCE, Alert, AlertEvent, events_of_class, rfc3339, severity_of

ALERTNAME_PREFIX: Final = "StackStateKeyRotator"
#: How long a firing alert lasts without a re-send when no ``hold`` is given.
DEFAULT_HOLD: Final = timedelta(hours=8)

_ANNOTATED: Final = (
    "kind",
    "key_id",
    "key_name",
    "expires_at",
    "step",
    "category",
    "error_type",
    "run_id",
    "dedup_key",
)


def alertname(event: AlertEvent) -> str:
    """``StackStateKeyRotator<Event>``, e.g. ``StackStateKeyRotatorKeyExpired``."""
    return ALERTNAME_PREFIX + "".join(part.capitalize() for part in str(event).split("_"))


def _labels(event: AlertEvent, managed_key: str) -> dict[str, str]:
    return {
        "alertname": alertname(event),
        "managed_key": managed_key,
        "event": str(event),
        "severity": severity_of(event),
        "source": SOURCE,
    }


def alertmanager_alerts(alert: Alert, *, hold: timedelta = DEFAULT_HOLD) -> list[dict[str, Any]]:
    """The postable alerts for ``alert`` (see the module docstring)."""
    doc = alert.to_document()
    managed_key = doc["managed_key"] or "-"
    annotations = {"summary": doc["summary"], "description": doc["error"] or doc["summary"]}
    annotations.update({name: str(doc[name]) for name in _ANNOTATED if doc[name] is not None})
    if alert.event is AlertEvent.RECOVERED:
        assert alert.resolves is not None  # an Alert guarantees it
        ended = doc["timestamp"]
        return [
            {
                "labels": _labels(event, managed_key),
                "annotations": annotations,
                "startsAt": ended,
                "endsAt": ended,
            }
            for event in events_of_class(alert.resolves)
        ]
    return [
        {
            "labels": _labels(alert.event, managed_key),
            "annotations": annotations,
            "startsAt": doc["timestamp"],
            "endsAt": rfc3339(alert.timestamp + hold),
        }
    ]


class AlertmanagerHook:
    """Prometheus Alertmanager, API v2."""

    def __init__(
        self, name: str, url: str, *, timeout: float, hold: timedelta = DEFAULT_HOLD
    ) -> None:
        """``url`` is Alertmanager's base URL; ``hold`` see the module docstring."""
        self._name = name
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._timeout = timeout
        self._hold = hold

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics."""
        return self._name

    def send(self, alert: Alert) -> None:
        """Post the alerts list."""
        body = json.dumps(alertmanager_alerts(alert, hold=self._hold)).encode()
        post_json(f"alertmanager hook {self._name}", self._url, body, timeout=self._timeout)
