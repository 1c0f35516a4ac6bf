"""The ``alerts:`` section: one model per alert hook type (webhook, slack, pagerduty,
alertmanager, command) and which events each receives.

The events themselves (:class:`~rotator.alerts.event.AlertEvent`) belong to the alerts; the hooks
that deliver them are built from these models by :func:`rotator.wiring.build_hooks`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from rotator.alerts.event import AlertEvent
from rotator.config.base import ConfigModel, raise_problems
from rotator.config.secret_files import load_secret_twins
from rotator.config.types import (
    ChildEnv,
    ConfigPath,
    HttpUrlStr,
    NonEmptyStr,
    PositiveDuration,
    SecretHttpUrl,
    SecretValue,
)

#: Events that mean something needs attention.
FAILURE_EVENTS: Final = frozenset(
    {
        AlertEvent.ROTATION_FAILED,
        AlertEvent.KEY_EXPIRING,
        AlertEvent.KEY_EXPIRED,
        AlertEvent.SWITCH_TIMEOUT,
        AlertEvent.CONFIG_INVALID,
        AlertEvent.EMERGENCY_ROTATION,
    }
)
#: What a hook receives unless it lists ``events``: the failures, ``recovered`` so that
#: incidents opened by a failure (PagerDuty, Alertmanager) are resolved again, and
#: ``emergency_rotation`` (``rotate --emergency``).
DEFAULT_ALERT_EVENTS: Final = (
    AlertEvent.ROTATION_FAILED,
    AlertEvent.KEY_EXPIRING,
    AlertEvent.KEY_EXPIRED,
    AlertEvent.SWITCH_TIMEOUT,
    AlertEvent.CONFIG_INVALID,
    AlertEvent.RECOVERED,
    AlertEvent.EMERGENCY_ROTATION,
)


class _AlertHookBase(ConfigModel):
    name: NonEmptyStr | None = None
    """Name of the hook in logs and metrics; default: <type>[<index>]."""
    events: Annotated[list[AlertEvent], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_EVENTS)
    )
    """Events sent to this hook; default: every failure event, recovered and
    emergency_rotation."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each delivery."""
    repeat_interval: PositiveDuration = timedelta(hours=4)
    """An ongoing problem is sent again after this long."""

    @field_validator("events")
    @classmethod
    def _unique_events(cls, events: list[AlertEvent]) -> list[AlertEvent]:
        return list(dict.fromkeys(events))


class WebhookAlert(_AlertHookBase):
    """POST the event as JSON, optionally signed (X-Rotator-Signature: sha256=<hex HMAC>)."""

    type: Literal["webhook"]
    url: HttpUrlStr
    hmac_secret: SecretValue | None = None
    """Key of the HMAC-SHA256 signature of the body."""
    hmac_secret_file: ConfigPath | None = None
    """File holding the HMAC key (read at load time)."""
    headers: dict[NonEmptyStr, SecretStr] = Field(default_factory=dict)
    """Extra request headers; values are treated as secrets (e.g. Authorization)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("hmac_secret",), info)


class SlackAlert(_AlertHookBase):
    """A Slack incoming webhook."""

    type: Literal["slack"]
    webhook_url: SecretHttpUrl | None = None
    """The incoming-webhook URL (a secret: anyone holding it can post)."""
    webhook_url_file: ConfigPath | None = None
    """File holding the webhook URL (read at load time)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("webhook_url",), info)

    @model_validator(mode="after")
    def _required(self) -> SlackAlert:
        if self.webhook_url is None:
            raise_problems([("webhook_url", "give webhook_url or webhook_url_file")])
        return self


class PagerDutyAlert(_AlertHookBase):
    """PagerDuty Events API v2: trigger on failure, resolve on recovered (same dedup key)."""

    type: Literal["pagerduty"]
    routing_key: SecretValue | None = None
    """Integration (routing) key of the service."""
    routing_key_file: ConfigPath | None = None
    """File holding the routing key (read at load time)."""
    url: HttpUrlStr = "https://events.pagerduty.com/v2/enqueue"
    """Events API endpoint."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("routing_key",), info)

    @model_validator(mode="after")
    def _required(self) -> PagerDutyAlert:
        if self.routing_key is None:
            raise_problems([("routing_key", "give routing_key or routing_key_file")])
        return self


class AlertmanagerAlert(_AlertHookBase):
    """Prometheus Alertmanager (POST <url>/api/v2/alerts)."""

    type: Literal["alertmanager"]
    url: HttpUrlStr
    """Alertmanager base URL."""


class CommandAlert(_AlertHookBase):
    """A command that receives the event JSON on standard input."""

    type: Literal["command"]
    command: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Program and arguments (no shell)."""
    env: ChildEnv = Field(default_factory=dict)
    """Environment variables of the command (values may use ${VAR}). It gets these, PATH,
    HOME, LANG and LC_ALL (when set), nothing else: never the rotator's own credentials."""


AlertHook = Annotated[
    WebhookAlert | SlackAlert | PagerDutyAlert | AlertmanagerAlert | CommandAlert,
    Field(discriminator="type"),
]
