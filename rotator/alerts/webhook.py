"""``webhook``: POST the alert document as JSON, HMAC-signed when ``hmac_secret`` is set.

The body is :meth:`rotator.alerts.event.Alert.to_document` (documented in
:mod:`rotator.alerts.event`), serialised compactly with sorted keys. With ``hmac_secret`` the
request carries ``X-Rotator-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``, keyed
with the secret's UTF-8 bytes; a receiver recomputes it over the raw body *before* parsing it
and compares in constant time. Extra ``headers`` (e.g. ``Authorization``) are sent as given;
their values are secrets and never logged.

A non-2xx answer raises :class:`~rotator.alerts.base.AlertDeliveryError` naming the status,
never the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Final

from rotator.alerts._http import post_json
from rotator.alerts.event import Alert

SIGNATURE_HEADER: Final = "X-Rotator-Signature"


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(alert: Alert) -> bytes:
    """The exact bytes POSTed (and signed): the alert document as compact JSON."""
    return json.dumps(alert.to_document(), separators=(",", ":"), sort_keys=True).encode()


class WebhookHook:
    """A generic JSON webhook."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        hmac_secret: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers`` hold revealed values (the config keeps them as secrets)."""
        self._name = name
        self._url = url
        self._timeout = timeout
        self._secret = hmac_secret or None
        self._headers = dict(headers or {})

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics."""
        return self._name

    def send(self, alert: Alert) -> None:
        """POST the document, signed when a secret is configured."""
        body = webhook_body(alert)
        headers = dict(self._headers)
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        post_json(
            f"webhook hook {self._name}", self._url, body, timeout=self._timeout, headers=headers
        )
