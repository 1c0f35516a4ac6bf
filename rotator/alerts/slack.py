"""``slack``: a readable message through a Slack incoming webhook.

The body is ``{"text": <one line>, "blocks": [...]}``: ``text`` is the notification fallback
(``:x: rotation_failed — agent-prod-eu: push failed: ...``); the blocks show the event, the
managed key, the StackState key (name and id), its expiry, the failed step and its category
(what to do), the error (in a code block) and the run. Every value comes from the redacted
alert document, escaped for Slack's mrkdwn (``&``, ``<``, ``>``) and shortened to Slack's field
limits.

The webhook URL is a credential (anyone holding it can post to the channel): it is never logged
nor put in an error, which say ``slack hook <name>`` instead.
"""

from __future__ import annotations

import json
from typing import Any, Final

from rotator.alerts._http import post_json
from rotator.alerts.event import Alert

_ICONS: Final = {
    "critical": ":rotating_light:",
    "error": ":x:",
    "warning": ":warning:",
    "info": ":white_check_mark:",
}
#: Slack's limit for a section text is 3000 characters, for a field 2000; stay below.
_MAX_TEXT: Final = 2900
_MAX_FIELD: Final = 1900


def _escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(alert: Alert) -> dict[str, Any]:
    """The ``{"text", "blocks"}`` body for ``alert`` (built from its redacted document)."""
    doc = alert.to_document()
    icon = _ICONS[doc["severity"]]
    summary = _escape(doc["summary"])
    title = _clip(f"{icon} {doc['event']} — {summary}", _MAX_TEXT)
    key = doc["key_name"] or "-"
    if doc["key_id"] is not None:
        key = f"{key} (id {doc['key_id']})"
    fields = [
        ("Managed key", doc["managed_key"] or "-"),
        ("Event", f"{doc['event']} ({doc['severity']})"),
        ("StackState key", key),
        ("Expires", doc["expires_at"] or "unknown"),
    ]
    if doc["step"]:
        fields.append(("Step", doc["step"]))
    if doc["category"]:
        fields.append(("Category", doc["category"]))
    if doc["kind"]:
        fields.append(("Kind", doc["kind"]))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_escape(value)}", _MAX_FIELD)}
                for label, value in fields
            ],
        },
    ]
    if doc["error"]:
        error = _clip(_escape(doc["error"]).replace("```", "'''"), _MAX_TEXT - 20)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _escape(f"{doc['source']} · run {doc['run_id']} · {doc['timestamp']}"),
                }
            ],
        }
    )
    return {"text": title, "blocks": blocks}


class SlackHook:
    """A Slack incoming webhook (its URL is a secret)."""

    def __init__(self, name: str, webhook_url: str, *, timeout: float) -> None:
        """``webhook_url`` is the revealed URL; it is only ever passed to httpx."""
        self._name = name
        self._url = webhook_url
        self._timeout = timeout

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics."""
        return self._name

    def send(self, alert: Alert) -> None:
        """Post the message; errors say ``slack hook <name>``, never the URL."""
        body = json.dumps(slack_message(alert)).encode()
        post_json(f"slack hook {self._name}", self._url, body, timeout=self._timeout)
