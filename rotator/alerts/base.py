"""The small Protocol every alert hook satisfies, and the error a failed delivery raises."""

from __future__ import annotations

from typing import Protocol

from rotator.alerts.event import Alert
from rotator.errors import TemporaryError


class AlertDeliveryError(TemporaryError):
    """A hook could not deliver an alert.

    The message names the hook (``slack hook ops``) and what went wrong (HTTP status, timeout,
    exit code), never a URL, a response body or a secret. ``retry`` is False when sending the
    same alert again cannot help (e.g. HTTP 400/401/403/404: the hook is misconfigured).
    """

    def __init__(
        self, message: str, *, hook: str, status: int | None = None, retry: bool = True
    ) -> None:
        super().__init__(message)
        #: The hook's name.
        self.hook = hook
        #: The HTTP status the receiver answered, if any.
        self.status = status
        #: Whether another attempt may succeed.
        self.retry = retry


class AlertHook(Protocol):
    """One destination of alerts (webhook, Slack, PagerDuty, Alertmanager, command)."""

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics (``<type>[<index>]`` unless configured)."""
        ...

    def send(self, alert: Alert) -> None:
        """Deliver one alert within the hook's timeout, or raise :class:`AlertDeliveryError`."""
        ...
