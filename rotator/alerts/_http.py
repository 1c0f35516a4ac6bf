"""The one JSON POST the HTTP hooks share: a timeout, no redirects, errors without bodies.

Errors name the hook and the HTTP status or the kind of transport failure only: never the URL
(a Slack webhook URL is itself a credential) nor the receiver's answer (it may echo the request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import httpx

from rotator.alerts.base import AlertDeliveryError

#: Statuses after which sending the same request again may succeed (besides every 5xx).
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})

USER_AGENT: Final = "stackstate-key-rotator"


def post_json(
    label: str,
    url: str,
    body: bytes,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST ``body`` (JSON bytes, sent exactly as given) and return the 2xx status.

    ``label`` names the hook in errors (``webhook hook ops``). Raises
    :class:`~rotator.alerts.base.AlertDeliveryError` for a transport error, a timeout or any
    non-2xx answer; 4xx answers other than 408/425/429 are marked not retryable.
    """
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, content=body, headers=sent)
    except httpx.TimeoutException:
        raise AlertDeliveryError(f"{label}: no answer within {timeout:g}s", hook=label) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # The class name only: httpx messages may quote the URL.
        raise AlertDeliveryError(
            f"{label}: request failed ({type(exc).__name__})", hook=label
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    retry = status >= 500 or status in RETRYABLE_STATUSES
    raise AlertDeliveryError(
        f"{label}: answered HTTP {status}", hook=label, status=status, retry=retry
    )
