"""Builders of alerts and hook configurations shared by the alert tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rotator.alerts.event import Alert, AlertEvent

NOW = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)


def make_alert(event: AlertEvent = AlertEvent.ROTATION_FAILED, **overrides: Any) -> Alert:
    """An alert about managed key ``agent-prod`` with plausible fields; ``overrides`` win."""
    fields: dict[str, Any] = {
        "event": event,
        "managed_key": "agent-prod",
        "kind": "service-token",
        "key_id": 4711,
        "key_name": "agent-prod-20260101T000000Z",
        "expires_at": EXPIRES,
        "step": "push",
        "category": "retry",
        "error_type": "TargetUnavailable",
        "error": "target vault:secret/agent: answered 503",
        "run_id": "run-1",
        "timestamp": NOW,
        "summary": "agent-prod: push failed",
        "resolves": None,
    }
    if event is AlertEvent.RECOVERED:
        fields.update(
            resolves="failure",
            error=None,
            step=None,
            category=None,
            error_type=None,
            summary="agent-prod: healthy",
        )
    fields.update(overrides)
    return Alert(**fields)


class Clock:
    """A frozen UTC clock that tests move on purpose."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        self.now += delta
