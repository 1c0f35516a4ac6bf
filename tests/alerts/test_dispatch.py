"""Tests for the alert dispatcher: routing, deduplication, retries and isolation of hooks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from structlog.testing import capture_logs

from rotator.alerts.alertmanager import AlertmanagerHook
from rotator.alerts.base import AlertHook
from rotator.alerts.command import CommandHook
from rotator.alerts.dispatch import Alerter, exponential_backoff
from rotator.alerts.event import Alert, AlertEvent
from rotator.alerts.pagerduty import PagerDutyHook
from rotator.alerts.slack import SlackHook
from rotator.alerts.webhook import WebhookHook
from rotator.config import AlertHook as AlertHookConfig
from rotator.secrets import Secret, reset_registry
from rotator.wiring import HookConfig, build_hooks
from tests.alerts.factory import Clock, make_alert
from tests.plugins.alert_receiver import AlertReceiver

#: Validates ``alerts:`` entries like the configuration loader does.
_ALERTS: TypeAdapter[list[HookConfig]] = TypeAdapter(list[AlertHookConfig])

FAILED = AlertEvent.ROTATION_FAILED
RECOVERED = AlertEvent.RECOVERED


def tiny_backoff(_attempt: int) -> float:
    """Backoff of 10 ms, so retry tests stay fast."""
    return 0.01


def hook_configs(entries: Sequence[dict[str, Any]]) -> list[HookConfig]:
    """Validate ``alerts:`` entries with the real configuration model."""
    return _ALERTS.validate_python(list(entries))


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    """An ``alerts:`` entry of a webhook hook."""
    return {"type": "webhook", "url": url, **extra}


class Results:
    """Records ``on_result`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, hook: str, result: str) -> None:
        self.calls.append((hook, result))


@pytest.fixture
def clock() -> Clock:
    """A frozen clock for repeat intervals."""
    return Clock()


@pytest.fixture
def results() -> Results:
    """The on_result calls of the alerter under test."""
    return Results()


@pytest.fixture
def make_alerter(clock: Clock, results: Results) -> Callable[..., Alerter]:
    """Build an alerter for ``alerts:`` entries, with the test clock and a tiny backoff."""

    def make(entries: Sequence[dict[str, Any]], **kwargs: Any) -> Alerter:
        kwargs.setdefault("backoff", tiny_backoff)
        return Alerter(build_hooks(hook_configs(entries)), clock=clock, on_result=results, **kwargs)

    return make


@pytest.fixture
def key_value() -> Iterator[str]:
    """A key value registered as a secret (forgotten after the test)."""
    yield Secret("sts-key-value-0123456789abcdef").reveal()
    reset_registry()


class TestBuildHooks:
    """build_hooks: configuration models to hook instances."""

    def test_maps_every_type_to_its_hook(self) -> None:
        """Each configured type becomes its hook class, paired with its configuration."""
        configs = hook_configs(
            [
                webhook("http://127.0.0.1:1/w"),
                {"type": "slack", "webhook_url": "http://127.0.0.1:1/s"},
                {"type": "pagerduty", "routing_key": "routing-key-123"},
                {"type": "alertmanager", "url": "http://127.0.0.1:1"},
                {"type": "command", "command": ["/bin/true"]},
            ]
        )
        pairs = build_hooks(configs)
        assert [type(hook) for _, hook in pairs] == [
            WebhookHook,
            SlackHook,
            PagerDutyHook,
            AlertmanagerHook,
            CommandHook,
        ]
        assert [config for config, _ in pairs] == configs

    def test_default_names_are_type_and_index(self) -> None:
        """Unnamed hooks are called <type>[<index>]; a configured name wins."""
        pairs = build_hooks(
            hook_configs([webhook("http://127.0.0.1:1/a"), webhook("http://x:1/b", name="ops")])
        )
        assert [hook.name for _, hook in pairs] == ["webhook[0]", "ops"]


class TestExponentialBackoff:
    """exponential_backoff: doubling delays with a cap."""

    def test_doubles_up_to_the_cap(self) -> None:
        """Delays double per attempt and stop growing at the cap."""
        backoff = exponential_backoff(0.5, cap=3.0)
        assert [backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


class TestAlerterRouting:
    """Alerter.notify: which hooks get an alert."""

    def test_only_hooks_listing_the_event_get_it(
        self, make_receiver: Callable[..., AlertReceiver], make_alerter: Callable[..., Alerter]
    ) -> None:
        """A hook whose events do not include the alert's event receives nothing."""
        wanted, other = make_receiver(), make_receiver()
        alerter = make_alerter(
            [webhook(wanted.url), webhook(other.url, events=["key_expired", "recovered"])]
        )
        alerter.notify(make_alert(FAILED))
        assert len(wanted.received) == 1
        assert other.received == []

    def test_success_reported_per_hook(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        results: Results,
    ) -> None:
        """A delivered alert is reported as sent under the hook's name."""
        make_alerter([webhook(receiver.url, name="ops")]).notify(make_alert())
        assert results.calls == [("ops", "sent")]


class TestAlerterDeduplication:
    """Alerter.notify: repeat intervals and recovery."""

    def test_repeat_within_interval_is_suppressed(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        results: Results,
        clock: Clock,
    ) -> None:
        """The same alert twice within repeat_interval is delivered once and then suppressed."""
        alerter = make_alerter([webhook(receiver.url, repeat_interval="1h")])
        alerter.notify(make_alert())
        clock.advance(timedelta(minutes=59))
        alerter.notify(make_alert())
        assert len(receiver.received) == 1
        assert results.calls == [("webhook[0]", "sent"), ("webhook[0]", "suppressed")]

    def test_repeat_after_interval_is_sent_again(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter], clock: Clock
    ) -> None:
        """Once repeat_interval has passed, an ongoing problem is delivered again."""
        alerter = make_alerter([webhook(receiver.url, repeat_interval="1h")])
        alerter.notify(make_alert())
        clock.advance(timedelta(hours=1))
        alerter.notify(make_alert())
        assert len(receiver.received) == 2

    def test_other_event_of_the_same_class_is_sent(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """key_expired after key_expiring is a new alert, not a repeat."""
        alerter = make_alerter([webhook(receiver.url)])
        alerter.notify(make_alert(AlertEvent.KEY_EXPIRING))
        alerter.notify(make_alert(AlertEvent.KEY_EXPIRED))
        assert [b["event"] for b in receiver.bodies()] == ["key_expiring", "key_expired"]

    def test_other_managed_key_is_sent(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """The same event for another managed key is not a repeat."""
        alerter = make_alerter([webhook(receiver.url)])
        alerter.notify(make_alert(managed_key="a"))
        alerter.notify(make_alert(managed_key="b"))
        assert len(receiver.received) == 2

    def test_rotation_succeeded_is_never_deduplicated(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """Every successful rotation is its own fact and is always delivered."""
        alerter = make_alerter([webhook(receiver.url, events=["rotation_succeeded"])])
        alerter.notify(make_alert(AlertEvent.ROTATION_SUCCEEDED))
        alerter.notify(make_alert(AlertEvent.ROTATION_SUCCEEDED))
        assert len(receiver.received) == 2

    def test_emergency_rotation_is_never_deduplicated_and_sent_by_default(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """rotate --emergency: every one is delivered, to a hook with the default events."""
        alerter = make_alerter([webhook(receiver.url)])
        alerter.notify(make_alert(AlertEvent.EMERGENCY_ROTATION))
        alerter.notify(make_alert(AlertEvent.EMERGENCY_ROTATION))
        assert len(receiver.received) == 2
        assert make_alert(AlertEvent.EMERGENCY_ROTATION).severity == "critical"

    def test_recovered_without_failure_is_not_sent(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        results: Results,
    ) -> None:
        """A recovered alert with nothing to resolve is neither delivered nor reported."""
        make_alerter([webhook(receiver.url)]).notify(make_alert(RECOVERED))
        assert receiver.received == []
        assert results.calls == []

    def test_recovered_after_failure_resolves_it(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """After a failure, recovered is delivered once and a new failure is sent at once."""
        alerter = make_alerter([webhook(receiver.url)])
        alerter.notify(make_alert(FAILED))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        alerter.notify(make_alert(FAILED))
        assert [b["event"] for b in receiver.bodies()] == [
            "rotation_failed",
            "recovered",
            "rotation_failed",
        ]
        assert receiver.bodies()[1]["dedup_key"] == receiver.bodies()[0]["dedup_key"]

    def test_recovered_resolves_only_its_class(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """A recovered alert of the expiry class is not sent when only a failure was."""
        alerter = make_alerter([webhook(receiver.url)])
        alerter.notify(make_alert(FAILED))
        alerter.notify(make_alert(RECOVERED, resolves="expiry"))
        assert [b["event"] for b in receiver.bodies()] == ["rotation_failed"]

    def test_recovered_only_to_hooks_that_got_the_failure(
        self, make_receiver: Callable[..., AlertReceiver], make_alerter: Callable[..., Alerter]
    ) -> None:
        """A hook that never received the failure does not receive its recovery."""
        both, recovered_only = make_receiver(), make_receiver()
        alerter = make_alerter(
            [webhook(both.url), webhook(recovered_only.url, events=["recovered"])]
        )
        alerter.notify(make_alert(FAILED))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        assert [b["event"] for b in both.bodies()] == ["rotation_failed", "recovered"]
        assert recovered_only.received == []

    def test_failed_delivery_is_not_remembered(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """An alert whose delivery failed is tried again by the next notify, within the interval."""
        alerter = make_alerter([webhook(receiver.url)], retries=1)
        receiver.fail_next("POST", "/.*", 500)
        alerter.notify(make_alert())
        alerter.notify(make_alert())
        assert len(receiver.received) == 1
        assert [entry.status for entry in receiver.log] == [500, 200]


def slack_without_recovered(url: str) -> dict[str, Any]:
    """A Slack hook that hears of failures only: it is never told of a recovery."""
    return {
        "type": "slack",
        "webhook_url": url,
        "events": ["rotation_failed", "switch_timeout"],
        "repeat_interval": "4h",
    }


class TestAlerterIncidents:
    """A recovery ends the incident for every hook; the next failure is a new one."""

    def test_hook_without_recovered_gets_a_new_failure_at_once(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        results: Results,
        clock: Clock,
    ) -> None:
        """Fail #1 is sent, its repeat held back, and after a recovery fail #2 is sent at once."""
        alerter = make_alerter([slack_without_recovered(receiver.url)])
        alerter.notify(make_alert(FAILED, summary="fail #1"))
        clock.advance(timedelta(minutes=10))
        alerter.notify(make_alert(FAILED, summary="fail #1 again"))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        clock.advance(timedelta(minutes=10))
        alerter.notify(make_alert(FAILED, summary="fail #2"))
        assert ["fail #2" in b["text"] for b in receiver.bodies()] == [False, True]
        assert "fail #1" in receiver.bodies()[0]["text"]
        assert results.calls == [
            ("slack[0]", "sent"),
            ("slack[0]", "suppressed"),
            ("slack[0]", "sent"),
        ]

    def test_the_reset_survives_in_the_state_file(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        clock: Clock,
        tmp_path: Path,
    ) -> None:
        """Each notify from a new process (cron) sees the previous one's state, reset included."""
        state = tmp_path / "history.jsonl.alerts.json"

        def run(alert: Alert) -> None:
            make_alerter([slack_without_recovered(receiver.url)], state_path=state).notify(alert)

        run(make_alert(FAILED, summary="fail #1"))
        clock.advance(timedelta(minutes=10))
        run(make_alert(FAILED, summary="fail #1 again"))
        run(make_alert(RECOVERED, resolves="failure"))
        assert json.loads(state.read_text()) == []
        clock.advance(timedelta(minutes=10))
        run(make_alert(FAILED, summary="fail #2"))
        assert len(receiver.received) == 2
        assert "fail #2" in receiver.bodies()[1]["text"]
        assert oct(state.stat().st_mode & 0o777) == "0o600"

    def test_undelivered_recovery_still_ends_the_incident(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        clock: Clock,
    ) -> None:
        """A recovered that could not be delivered is retried later; a new failure is sent."""
        alerter = make_alerter([webhook(receiver.url, repeat_interval="4h")], retries=1)
        alerter.notify(make_alert(FAILED))
        receiver.fail_next("POST", "/.*", 500)
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        clock.advance(timedelta(minutes=1))
        alerter.notify(make_alert(FAILED))
        assert [b["event"] for b in receiver.bodies()] == [
            "rotation_failed",
            "recovered",
            "rotation_failed",
        ]

    def test_a_new_failure_before_the_resolution_got_through_is_sent(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        clock: Clock,
    ) -> None:
        """The failure after an undelivered recovery is a new incident: delivered at once."""
        alerter = make_alerter([webhook(receiver.url, repeat_interval="4h")], retries=1)
        alerter.notify(make_alert(FAILED))
        receiver.fail_next("POST", "/.*", 500)
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        clock.advance(timedelta(minutes=1))
        alerter.notify(make_alert(FAILED))
        alerter.notify(make_alert(RECOVERED, resolves="failure"))
        assert [b["event"] for b in receiver.bodies()] == [
            "rotation_failed",
            "rotation_failed",
            "recovered",
        ]


class TestAlerterRetries:
    """Alerter.notify: retries with backoff, bounded by attempts and deadline."""

    def test_transient_errors_are_retried(
        self,
        receiver: AlertReceiver,
        make_alerter: Callable[..., Alerter],
        results: Results,
    ) -> None:
        """Two 500 answers, then 200: three attempts and one delivery, reported sent."""
        receiver.fail_next("POST", "/.*", 500, count=2)
        make_alerter([webhook(receiver.url)]).notify(make_alert())
        assert [entry.status for entry in receiver.log] == [500, 500, 200]
        assert results.calls == [("webhook[0]", "sent")]

    def test_attempts_are_bounded(
        self,
        make_receiver: Callable[..., AlertReceiver],
        make_alerter: Callable[..., Alerter],
        results: Results,
    ) -> None:
        """A hook answering 500 forever gets exactly `retries` attempts, then is reported failed."""
        receiver = make_receiver(status=500)
        make_alerter([webhook(receiver.url)], retries=4).notify(make_alert())
        assert len(receiver.log) == 4
        assert results.calls == [("webhook[0]", "failed")]

    def test_client_errors_are_not_retried(
        self, make_receiver: Callable[..., AlertReceiver], make_alerter: Callable[..., Alerter]
    ) -> None:
        """A 401 answer (misconfigured hook) is tried once only."""
        receiver = make_receiver(status=401)
        make_alerter([webhook(receiver.url)]).notify(make_alert())
        assert len(receiver.log) == 1

    def test_too_many_requests_is_retried(
        self, receiver: AlertReceiver, make_alerter: Callable[..., Alerter]
    ) -> None:
        """A 429 answer is retried like a server error."""
        receiver.fail_next("POST", "/.*", 429)
        make_alerter([webhook(receiver.url)]).notify(make_alert())
        assert [entry.status for entry in receiver.log] == [429, 200]

    def test_deadline_stops_retries(
        self, make_receiver: Callable[..., AlertReceiver], make_alerter: Callable[..., Alerter]
    ) -> None:
        """No attempt starts when its backoff would end past the hook's deadline."""
        receiver = make_receiver(status=503)
        alerter = make_alerter(
            [webhook(receiver.url)],
            retries=5,
            backoff=lambda _n: 5.0,
            deadline=timedelta(seconds=1),
        )
        with capture_logs() as logs:
            alerter.notify(make_alert())
        assert len(receiver.log) == 1
        [failed] = [entry for entry in logs if entry["event"] == "alert.failed"]
        assert "deadline reached" in failed["error"]

    def test_retries_must_be_positive(self, clock: Clock) -> None:
        """An alerter with fewer than one attempt is refused."""
        with pytest.raises(ValueError, match="at least 1"):
            Alerter([], clock=clock, retries=0)


class BrokenHook:
    """A hook with a bug: it raises an unexpected error (a Protocol test double)."""

    name = "broken"

    def send(self, alert: Alert) -> None:
        """Fail with an error that is not an AlertDeliveryError."""
        raise RuntimeError(f"bug while sending {alert.event}")


class TestAlerterIsolation:
    """Alerter.notify: a failing hook never raises and never stops the others."""

    def test_dead_and_failing_hooks_do_not_block_a_working_one(
        self,
        make_receiver: Callable[..., AlertReceiver],
        make_alerter: Callable[..., Alerter],
        results: Results,
        closed_port_url: str,
    ) -> None:
        """An unreachable hook and a hook answering 500 fail alone; the third still gets it."""
        failing, working = make_receiver(status=500), make_receiver()
        alerter = make_alerter(
            [
                webhook(closed_port_url, name="dead"),
                webhook(failing.url, name="failing"),
                webhook(working.url, name="working"),
            ]
        )
        alerter.notify(make_alert())
        assert len(working.received) == 1
        assert len(failing.log) == 3
        assert sorted(results.calls) == [
            ("dead", "failed"),
            ("failing", "failed"),
            ("working", "sent"),
        ]

    def test_unexpected_hook_error_is_contained(
        self, receiver: AlertReceiver, clock: Clock, results: Results
    ) -> None:
        """A hook raising an unexpected error is reported failed and tried once only."""
        [(config, hook)] = build_hooks(hook_configs([webhook(receiver.url, name="ok")]))
        hooks: list[tuple[HookConfig, AlertHook]] = [(config, BrokenHook()), (config, hook)]
        with capture_logs() as logs:
            Alerter(hooks, clock=clock, on_result=results, backoff=tiny_backoff).notify(
                make_alert()
            )
        assert sorted(results.calls) == [("broken", "failed"), ("ok", "sent")]
        [failed] = [entry for entry in logs if entry["event"] == "alert.failed"]
        assert failed["error"] == "broken: unexpected RuntimeError"
        assert failed["attempts"] == 1

    def test_failing_result_callback_is_contained(
        self, receiver: AlertReceiver, clock: Clock
    ) -> None:
        """A metrics callback that raises does not break notify."""

        def explode(_hook: str, _result: str) -> None:
            raise RuntimeError("metrics down")

        hooks = build_hooks(hook_configs([webhook(receiver.url)]))
        Alerter(hooks, clock=clock, on_result=explode).notify(make_alert())
        assert len(receiver.received) == 1

    def test_failure_is_logged_without_secrets(
        self,
        make_receiver: Callable[..., AlertReceiver],
        make_alerter: Callable[..., Alerter],
    ) -> None:
        """A failed Slack delivery is logged with the hook name, never the webhook URL."""
        receiver = make_receiver(status=500)
        url = f"{receiver.url}/services/T0/B0/SLACKSECRETPATH"
        with capture_logs() as logs:
            make_alerter([{"type": "slack", "webhook_url": url, "name": "chat"}]).notify(
                make_alert()
            )
        [failed] = [entry for entry in logs if entry["event"] == "alert.failed"]
        assert failed["hook"] == "chat"
        assert failed["error"] == "slack hook chat: answered HTTP 500"
        assert "SLACKSECRETPATH" not in repr(logs)


class TestAlerterSecretHygiene:
    """Alerter.notify: no key value reaches any hook."""

    def test_no_key_value_in_any_delivered_payload(
        self,
        make_receiver: Callable[..., AlertReceiver],
        make_alerter: Callable[..., Alerter],
        key_value: str,
        tmp_path: Path,
    ) -> None:
        """A key value registered as a secret is masked in every hook's payload."""
        receivers = [make_receiver() for _ in range(4)]
        stdin_copy = tmp_path / "stdin.json"
        script = tmp_path / "notify.sh"
        script.write_text(f'cat > "{stdin_copy}"\n')
        alerter = make_alerter(
            [
                webhook(receivers[0].url, hmac_secret="signing-secret"),
                {"type": "slack", "webhook_url": receivers[1].url},
                {"type": "pagerduty", "routing_key": "routing-key-1", "url": receivers[2].url},
                {"type": "alertmanager", "url": receivers[3].url},
                {"type": "command", "command": ["/bin/sh", str(script)]},
            ]
        )
        alerter.notify(
            make_alert(
                error=f"StackState refused {key_value}",
                summary=f"agent-prod: verify failed for {key_value}",
            )
        )
        payloads = [r.body.decode() for rec in receivers for r in rec.received]
        payloads.append(stdin_copy.read_text())
        assert len(payloads) == 5
        for payload in payloads:
            json.loads(payload)
            assert key_value not in payload
