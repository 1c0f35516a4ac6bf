"""Tests for each alert hook type, delivering over real HTTP to a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rotator.alerts.alertmanager import AlertmanagerHook, alertname
from rotator.alerts.base import AlertDeliveryError, AlertHook
from rotator.alerts.command import CommandHook
from rotator.alerts.event import AlertEvent, events_of_class
from rotator.alerts.pagerduty import PagerDutyHook
from rotator.alerts.slack import SlackHook
from rotator.alerts.webhook import SIGNATURE_HEADER, WebhookHook
from rotator.config import (
    AlertmanagerAlert,
    CommandAlert,
    PagerDutyAlert,
    SlackAlert,
    WebhookAlert,
)
from rotator.secrets import Secret, reset_registry
from rotator.wiring import build_hook
from tests.alerts.factory import make_alert
from tests.plugins.alert_receiver import AlertReceiver

HMAC_SECRET = "webhook-signing-secret"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
SH = "/bin/sh"
#: Generous bound for a killed process to vanish (not a timing assertion: it only avoids a race
#: with the kernel finishing the exit).
GONE_WITHIN = 10.0


@pytest.fixture
def key_value() -> Iterator[str]:
    """A key value registered as a secret (forgotten after the test)."""
    yield Secret("sts-key-value-0123456789abcdef").reveal()
    reset_registry()


def delivered_text(receiver: AlertReceiver) -> str:
    """Every body the receiver got, concatenated as text."""
    return "".join(r.body.decode() for r in receiver.received)


class TestWebhookHook:
    """The webhook hook: JSON document, HMAC signature, extra headers, errors."""

    def test_posts_the_document_signed_with_hmac(self, receiver: AlertReceiver) -> None:
        """The body is the alert document and the signature is HMAC-SHA256 of its exact bytes."""
        config = WebhookAlert.model_validate(
            {"type": "webhook", "url": f"{receiver.url}/hook", "hmac_secret": HMAC_SECRET}
        )
        build_hook(config, 0).send(make_alert())
        [request] = receiver.received
        assert request.method == "POST"
        assert request.path == "/hook"
        expected = hmac.new(HMAC_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.header(SIGNATURE_HEADER) == f"sha256={expected}"
        assert request.header("Content-Type") == "application/json"
        assert request.json() == make_alert().to_document()

    def test_unsigned_without_secret(self, receiver: AlertReceiver) -> None:
        """Without hmac_secret no signature header is sent."""
        WebhookHook("w", receiver.url, timeout=5).send(make_alert())
        assert receiver.received[0].header(SIGNATURE_HEADER) is None

    def test_sends_extra_headers(self, receiver: AlertReceiver) -> None:
        """Configured headers (secret values) reach the receiver as given."""
        config = WebhookAlert.model_validate(
            {"type": "webhook", "url": receiver.url, "headers": {"Authorization": "Bearer abc"}}
        )
        build_hook(config, 0).send(make_alert())
        assert receiver.received[0].header("Authorization") == "Bearer abc"

    def test_non_2xx_names_the_status_not_the_body(
        self, make_receiver: Callable[..., AlertReceiver]
    ) -> None:
        """A 500 answer raises a retryable error naming the status and never the answer body."""
        receiver = make_receiver(status=500, answer={"detail": "echoed-request-body"})
        with pytest.raises(AlertDeliveryError) as info:
            WebhookHook("ops", receiver.url, timeout=5).send(make_alert())
        assert str(info.value) == "webhook hook ops: answered HTTP 500"
        assert info.value.status == 500
        assert info.value.retry

    def test_client_error_is_not_retryable(
        self, make_receiver: Callable[..., AlertReceiver]
    ) -> None:
        """A 404 answer means a misconfigured hook: the error is marked not retryable."""
        receiver = make_receiver(status=404)
        with pytest.raises(AlertDeliveryError) as info:
            WebhookHook("ops", receiver.url, timeout=5).send(make_alert())
        assert not info.value.retry

    def test_unreachable_receiver_raises_delivery_error(self, closed_port_url: str) -> None:
        """A refused connection raises AlertDeliveryError naming the hook."""
        with pytest.raises(AlertDeliveryError, match=r"webhook hook ops: request failed"):
            WebhookHook("ops", closed_port_url, timeout=5).send(make_alert())

    def test_slow_receiver_times_out(self, receiver: AlertReceiver) -> None:
        """A receiver slower than the hook's timeout raises a timeout error."""
        receiver.add_latency("POST", "/.*", 1.0, count=1)
        with pytest.raises(AlertDeliveryError, match=r"no answer within 0\.2s"):
            WebhookHook("ops", receiver.url, timeout=0.2).send(make_alert())

    def test_key_value_never_delivered(self, receiver: AlertReceiver, key_value: str) -> None:
        """A registered key value in the error text is masked in the delivered body."""
        WebhookHook("w", receiver.url, timeout=5).send(make_alert(error=f"bad {key_value}"))
        assert key_value not in delivered_text(receiver)


class TestSlackHook:
    """The Slack hook: a readable message, and a webhook URL that never leaks."""

    def test_message_is_readable(self, receiver: AlertReceiver) -> None:
        """The message names the key, the event, the error and the expiry."""
        config = SlackAlert.model_validate({"type": "slack", "webhook_url": receiver.url})
        build_hook(config, 0).send(make_alert())
        body = receiver.bodies()[0]
        assert set(body) == {"text", "blocks"}
        assert "rotation_failed" in body["text"]
        assert "agent-prod: push failed" in body["text"]
        text = json.dumps(body["blocks"])
        for fact in ("agent-prod", "agent-prod-20260101T000000Z", "4711", "2026-02-01T00:00:00Z"):
            assert fact in text
        assert "*Step*\\npush" in text and "*Category*\\nretry" in text
        assert "target vault:secret/agent: answered 503" in text
        assert all(block["type"] in {"section", "context"} for block in body["blocks"])

    def test_mrkdwn_control_characters_are_escaped(self, receiver: AlertReceiver) -> None:
        """Angle brackets and ampersands in alert texts cannot form Slack links or mentions."""
        SlackHook("s", receiver.url, timeout=5).send(make_alert(error="<!channel> & more"))
        text = delivered_text(receiver)
        assert "<!channel>" not in text
        assert "&lt;!channel&gt; &amp; more" in text

    def test_errors_never_name_the_webhook_url(
        self, make_receiver: Callable[..., AlertReceiver]
    ) -> None:
        """A failed post says 'slack hook <name>' and not the secret URL."""
        receiver = make_receiver(status=403)
        url = f"{receiver.url}/services/T000/B000/XXXXSECRET"
        with pytest.raises(AlertDeliveryError) as info:
            SlackHook("ops", url, timeout=5).send(make_alert())
        assert str(info.value) == "slack hook ops: answered HTTP 403"
        assert "XXXXSECRET" not in repr(info.value)

    def test_key_value_never_delivered(self, receiver: AlertReceiver, key_value: str) -> None:
        """A registered key value in the alert texts is masked in the Slack message."""
        alert = make_alert(error=f"bad {key_value}", summary=f"s {key_value}")
        SlackHook("s", receiver.url, timeout=5).send(alert)
        assert key_value not in delivered_text(receiver)


class TestPagerDutyHook:
    """The PagerDuty hook: Events API v2 trigger and resolve bodies."""

    @pytest.fixture
    def pagerduty(self, make_receiver: Callable[..., AlertReceiver]) -> AlertReceiver:
        """A receiver answering 202 like the Events API."""
        return make_receiver(status=202, answer={"status": "success", "message": "ok"})

    def hook(self, receiver: AlertReceiver) -> AlertHook:
        """A PagerDuty hook built from its configuration, pointed at the receiver."""
        config = PagerDutyAlert.model_validate(
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{receiver.url}/v2/enqueue"}
        )
        return build_hook(config, 0)

    def test_trigger_matches_the_events_api_shape(self, pagerduty: AlertReceiver) -> None:
        """A failure sends a trigger with the required fields and valid enums."""
        self.hook(pagerduty).send(make_alert(AlertEvent.KEY_EXPIRED))
        [request] = pagerduty.received
        assert request.path == "/v2/enqueue"
        body = request.json()
        assert body["routing_key"] == ROUTING_KEY
        assert body["event_action"] in PD_ACTIONS
        assert body["event_action"] == "trigger"
        assert body["dedup_key"] == "rotator/agent-prod/expiry"
        assert len(body["dedup_key"]) <= 255
        payload = body["payload"]
        assert {"summary", "source", "severity"} <= set(payload)
        assert payload["severity"] in PD_SEVERITIES
        assert payload["severity"] == "critical"
        assert payload["source"] == "stackstate-key-rotator"
        assert payload["component"] == "agent-prod"
        assert payload["group"] == "service-token"
        assert payload["class"] == "key_expired"
        assert payload["timestamp"] == "2026-01-25T12:00:00Z"
        assert 0 < len(payload["summary"]) <= 1024
        assert payload["custom_details"]["key_id"] == 4711

    def test_long_summary_is_cut_to_the_api_limit(self, pagerduty: AlertReceiver) -> None:
        """A summary longer than 1024 characters is shortened."""
        self.hook(pagerduty).send(make_alert(summary="x" * 5000))
        assert len(pagerduty.bodies()[0]["payload"]["summary"]) == 1024

    def test_recovered_resolves_by_dedup_key(self, pagerduty: AlertReceiver) -> None:
        """A recovered alert sends exactly routing_key, resolve and the resolved dedup key."""
        self.hook(pagerduty).send(make_alert(AlertEvent.RECOVERED, resolves="failure"))
        assert pagerduty.bodies() == [
            {
                "routing_key": ROUTING_KEY,
                "event_action": "resolve",
                "dedup_key": "rotator/agent-prod/failure",
            }
        ]

    def test_trigger_and_resolve_share_the_dedup_key(self, pagerduty: AlertReceiver) -> None:
        """The resolve carries the dedup key of the trigger it closes."""
        hook = self.hook(pagerduty)
        hook.send(make_alert(AlertEvent.SWITCH_TIMEOUT))
        hook.send(make_alert(AlertEvent.RECOVERED, resolves="failure"))
        trigger, resolve = pagerduty.bodies()
        assert trigger["dedup_key"] == resolve["dedup_key"]

    def test_errors_never_name_the_routing_key(
        self, make_receiver: Callable[..., AlertReceiver]
    ) -> None:
        """A 400 answer raises an error without the routing key."""
        receiver = make_receiver(status=400)
        with pytest.raises(AlertDeliveryError) as info:
            PagerDutyHook("pd", ROUTING_KEY, url=receiver.url, timeout=5).send(make_alert())
        assert ROUTING_KEY not in str(info.value)
        assert str(info.value) == "pagerduty hook pd: answered HTTP 400"

    def test_key_value_never_delivered(self, pagerduty: AlertReceiver, key_value: str) -> None:
        """A registered key value in the error text is masked in the event."""
        self.hook(pagerduty).send(make_alert(error=f"bad {key_value}"))
        assert key_value not in delivered_text(pagerduty)


class TestAlertmanagerHook:
    """The Alertmanager hook: API v2 postable alerts, resolved by the same labels."""

    def hook(self, receiver: AlertReceiver) -> AlertHook:
        """An Alertmanager hook built from its configuration (repeat_interval 1h)."""
        config = AlertmanagerAlert.model_validate(
            {"type": "alertmanager", "url": receiver.url + "/", "repeat_interval": "1h"}
        )
        return build_hook(config, 0)

    def test_posts_a_list_of_postable_alerts(self, receiver: AlertReceiver) -> None:
        """A failure posts one alert with labels, annotations, startsAt and a held endsAt."""
        self.hook(receiver).send(make_alert(AlertEvent.KEY_EXPIRING))
        [request] = receiver.received
        assert request.path == "/api/v2/alerts"
        [posted] = request.json()
        assert set(posted) == {"labels", "annotations", "startsAt", "endsAt"}
        assert posted["labels"] == {
            "alertname": "StackStateKeyRotatorKeyExpiring",
            "managed_key": "agent-prod",
            "event": "key_expiring",
            "severity": "warning",
            "source": "stackstate-key-rotator",
        }
        assert posted["annotations"]["summary"] == "agent-prod: push failed"
        assert posted["annotations"]["description"] == "target vault:secret/agent: answered 503"
        assert {k: posted["annotations"][k] for k in ("step", "category", "error_type")} == {
            "step": "push",
            "category": "retry",
            "error_type": "TargetUnavailable",
        }
        assert all(isinstance(v, str) for v in posted["annotations"].values())
        assert posted["startsAt"] == "2026-01-25T12:00:00Z"
        assert posted["endsAt"] == "2026-01-25T14:00:00Z"  # twice the repeat interval

    def test_recovered_ends_the_alerts_of_its_class(self, receiver: AlertReceiver) -> None:
        """A recovered alert re-posts each resolved event's labels with endsAt set to now."""
        hook = self.hook(receiver)
        hook.send(make_alert(AlertEvent.ROTATION_FAILED))
        hook.send(make_alert(AlertEvent.RECOVERED, resolves="failure"))
        [[fired], resolved] = receiver.bodies()
        assert len(resolved) == len(events_of_class("failure"))
        assert fired["labels"] in [entry["labels"] for entry in resolved]
        for entry in resolved:
            assert entry["endsAt"] == "2026-01-25T12:00:00Z"
            assert entry["startsAt"] <= entry["endsAt"]
        assert {e["labels"]["alertname"] for e in resolved} == {
            alertname(AlertEvent.ROTATION_FAILED),
            alertname(AlertEvent.SWITCH_TIMEOUT),
        }

    def test_configuration_alert_has_a_placeholder_key(self, receiver: AlertReceiver) -> None:
        """A configuration alert, which has no managed key, labels it with a dash."""
        AlertmanagerHook("am", receiver.url, timeout=5).send(
            make_alert(AlertEvent.CONFIG_INVALID, managed_key=None, kind=None)
        )
        assert receiver.bodies()[0][0]["labels"]["managed_key"] == "-"

    def test_key_value_never_delivered(self, receiver: AlertReceiver, key_value: str) -> None:
        """A registered key value in the error text is masked in the annotations."""
        self.hook(receiver).send(make_alert(error=f"bad {key_value}"))
        assert key_value not in delivered_text(receiver)


class TestCommandHook:
    """The command hook: alert JSON on stdin, exit status, timeout."""

    def script(self, tmp_path: Path, body: str) -> list[str]:
        """A /bin/sh script in ``tmp_path``, as an argv."""
        path = tmp_path / "notify.sh"
        path.write_text(body)
        return [SH, str(path)]

    def test_receives_the_document_on_stdin(self, tmp_path: Path) -> None:
        """The program reads the alert document as JSON on standard input."""
        out = tmp_path / "alert.json"
        argv = self.script(tmp_path, f'cat > "{out}"\n')
        config = CommandAlert.model_validate({"type": "command", "command": argv})
        build_hook(config, 0).send(make_alert())
        assert json.loads(out.read_text()) == make_alert().to_document()

    def test_non_zero_exit_raises_with_last_stderr_line(self, tmp_path: Path) -> None:
        """A failing program raises an error quoting its exit status and last stderr line."""
        argv = self.script(tmp_path, "cat >/dev/null; echo first >&2; echo 'no route' >&2; exit 3")
        with pytest.raises(AlertDeliveryError) as info:
            CommandHook("notify", argv, timeout=5).send(make_alert())
        assert str(info.value) == "command hook notify: exit 3: no route"

    def test_stderr_is_redacted(self, tmp_path: Path, key_value: str) -> None:
        """A key value the program prints to stderr is masked in the error."""
        argv = self.script(tmp_path, f"cat >/dev/null; echo 'got {key_value}' >&2; exit 1")
        with pytest.raises(AlertDeliveryError) as info:
            CommandHook("notify", argv, timeout=5).send(make_alert())
        assert key_value not in str(info.value)

    def test_missing_program_is_not_retryable(self, tmp_path: Path) -> None:
        """A program that does not exist raises a non-retryable error."""
        with pytest.raises(AlertDeliveryError, match="not found") as info:
            CommandHook("notify", [str(tmp_path / "missing")], timeout=5).send(make_alert())
        assert not info.value.retry

    def test_timeout_kills_the_process_group(self, tmp_path: Path) -> None:
        """A program outliving the timeout is killed together with its children."""
        pid_file = tmp_path / "child.pid"
        argv = self.script(tmp_path, f'sleep 30 & echo $! > "{pid_file}"; wait\n')
        with pytest.raises(AlertDeliveryError, match=r"timed out after 0\.5s"):
            CommandHook("notify", argv, timeout=0.5).send(make_alert())
        child = int(pid_file.read_text())
        assert _gone_within(child, GONE_WITHIN)

    def test_program_sees_no_credential_of_the_rotator(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A hook printing ``env`` sees PATH, HOME, LANG, LC_ALL and its own env: entries,
        never the rotator's credentials."""
        monkeypatch.setenv("STS_SERVICE_TOKEN", "sts-service-token-of-the-rotator")
        monkeypatch.setenv("VAULT_TOKEN", "hvs.vault-token-of-the-rotator")
        monkeypatch.setenv("LANG", "C.UTF-8")
        monkeypatch.setenv("HOME", "/home/rotator")
        monkeypatch.setenv("LC_ALL", "C.UTF-8")
        out = tmp_path / "env.txt"
        argv = self.script(tmp_path, f'cat >/dev/null; env > "{out}"\n')
        config = CommandAlert.model_validate(
            {"type": "command", "command": argv, "env": {"CHANNEL": "#ops", "PORT": 8080}}
        )
        build_hook(config, 0).send(make_alert())
        printed = out.read_text()
        names = {line.split("=", 1)[0] for line in printed.splitlines() if "=" in line}
        # /bin/sh itself may export PWD, SHLVL or _ to what it runs: nothing from the rotator.
        assert names - {"PWD", "SHLVL", "_", "OLDPWD"} == {
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "CHANNEL",
            "PORT",
        }
        assert "CHANNEL=#ops" in printed and "PORT=8080" in printed
        assert "of-the-rotator" not in printed

    def test_stderr_with_a_prefix_of_a_key_is_masked(self, tmp_path: Path, key_value: str) -> None:
        """A 20-character prefix of a registered key printed to stderr is masked in the error."""
        argv = self.script(tmp_path, f"cat >/dev/null; echo 'got {key_value[:20]}' >&2; exit 1")
        with pytest.raises(AlertDeliveryError) as info:
            CommandHook("notify", argv, timeout=5).send(make_alert())
        assert str(info.value) == "command hook notify: exit 1: got **********"

    def test_key_value_never_on_stdin(self, tmp_path: Path, key_value: str) -> None:
        """A registered key value in the error text is masked in the JSON on stdin."""
        out = tmp_path / "alert.json"
        argv = self.script(tmp_path, f'cat > "{out}"\n')
        CommandHook("notify", argv, timeout=5).send(make_alert(error=f"bad {key_value}"))
        assert key_value not in out.read_text()


def _gone_within(pid: int, seconds: float) -> bool:
    """Whether the process is gone (or a zombie) now or becomes so within ``seconds``."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    """Whether a process exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    if sys.platform.startswith("linux") and status.exists():
        return status.read_text().split(")")[-1].split()[0] != "Z"
    return True
