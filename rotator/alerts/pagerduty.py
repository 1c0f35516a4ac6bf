"""``pagerduty``: Events API v2 — trigger an alert per managed key and event class, resolve it
when the key recovers.

Trigger (every event but ``recovered``)::

    {"routing_key": "<integration key>", "event_action": "trigger",
     "dedup_key": "rotator/<managed key>/<class>", "client": "stackstate-key-rotator",
     "payload": {"summary": "...",                  # at most 1024 characters
                 "source": "stackstate-key-rotator",
                 "severity": "critical|error|warning|info",
                 "timestamp": "<RFC 3339>",
                 "component": "<managed key>",      # omitted for config_invalid
                 "group": "<key kind>",             # omitted when unknown
                 "class": "<event>",
                 "custom_details": {<the alert document, null fields dropped>}}}

Resolve (``recovered``)::

    {"routing_key": "<integration key>", "event_action": "resolve",
     "dedup_key": "rotator/<managed key>/<class it resolves>"}

Because the dedup key is per managed key and class (not per event), ``key_expiring`` followed by
``key_expired`` updates one PagerDuty alert, and one ``recovered`` closes it. PagerDuty answers
202; 429 and 5xx are retried by the dispatcher, other 4xx are not. The routing key is a secret:
errors say ``pagerduty hook <name>``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from rotator.alerts._http import post_json
from rotator.alerts.event import SOURCE, Alert, AlertEvent

DEFAULT_URL: Final = "https://events.pagerduty.com/v2/enqueue"
#: Documented limits of the Events API v2.
MAX_SUMMARY: Final = 1024
MAX_DEDUP_KEY: Final = 255


def pagerduty_event(alert: Alert, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for ``alert`` (trigger, or resolve for ``recovered``)."""
    doc = alert.to_document()
    dedup_key = doc["dedup_key"][:MAX_DEDUP_KEY]
    if alert.event is AlertEvent.RECOVERED:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    summary = doc["summary"] or doc["event"]
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    payload: dict[str, Any] = {
        "summary": summary,
        "source": SOURCE,
        "severity": doc["severity"],
        "timestamp": doc["timestamp"],
        "class": doc["event"],
        "custom_details": {k: v for k, v in doc.items() if v is not None},
    }
    if doc["managed_key"]:
        payload["component"] = doc["managed_key"]
    if doc["kind"]:
        payload["group"] = doc["kind"]
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": SOURCE,
        "payload": payload,
    }


class PagerDutyHook:
    """PagerDuty Events API v2 (trigger and resolve by dedup key)."""

    def __init__(
        self, name: str, routing_key: str, *, timeout: float, url: str = DEFAULT_URL
    ) -> None:
        """``routing_key`` is the revealed integration key; it only goes into the body."""
        self._name = name
        self._routing_key = routing_key
        self._url = url
        self._timeout = timeout

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics."""
        return self._name

    def send(self, alert: Alert) -> None:
        """Enqueue a trigger or resolve event."""
        body = json.dumps(pagerduty_event(alert, self._routing_key)).encode()
        post_json(f"pagerduty hook {self._name}", self._url, body, timeout=self._timeout)
