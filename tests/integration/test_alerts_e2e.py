"""End-to-end: a one-shot ``rotator rotate`` sends the daemon's alerts, and a dead hook never
stops a rotation."""

from __future__ import annotations

import hashlib
import hmac

from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.world import World

HMAC_SECRET = "webhook-signing-secret-123"


class TestOneShotAlerts:
    """Cron users get the same alerts as the daemon."""

    def test_failed_rotation_is_alerted_with_a_valid_signature(
        self, world: World, receiver: AlertReceiver
    ) -> None:
        """A failing key sends rotation_failed, HMAC-signed, naming the step, with no value."""
        world.sections["alerts"] = [
            {"type": "webhook", "url": f"{receiver.url}/hook", "hmac_secret": HMAC_SECRET}
        ]
        world.add_key("agent", roles=["no-such-role"])
        result = world.rotator("rotate")
        assert result.code == 1
        (delivered,) = receiver.received
        expected = (
            "sha256=" + hmac.new(HMAC_SECRET.encode(), delivered.body, hashlib.sha256).hexdigest()
        )
        assert delivered.header("X-Rotator-Signature") == expected
        body = delivered.json()
        assert body["event"] == "rotation_failed"
        assert body["managed_key"] == "agent"
        assert body["step"] == "verify"
        for value in world.secret_values():
            assert value not in delivered.body.decode()

    def test_dry_run_sends_no_alert(self, world: World, receiver: AlertReceiver) -> None:
        """A dry-run plans a failing key's rotation but alerts nobody."""
        world.sections["alerts"] = [{"type": "webhook", "url": f"{receiver.url}/hook"}]
        world.add_key("agent", roles=["no-such-role"])
        assert world.rotator("rotate", "--dry-run").code == 0
        assert receiver.received == []


class TestDeadHook:
    """An unreachable hook does not stop rotation."""

    def test_rotation_completes_with_an_unreachable_hook(
        self, world: World, closed_port_url: str, receiver: AlertReceiver
    ) -> None:
        """With one dead and one live hook, keys rotate and the live hook still gets its alert."""
        world.sections["alerts"] = [
            {"type": "webhook", "url": closed_port_url, "timeout": "1s"},
            {
                "type": "webhook",
                "url": f"{receiver.url}/hook",
                "events": ["rotation_succeeded", "rotation_failed"],
            },
        ]
        world.add_key("agent")
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        value = world.secret_value("agent")
        assert value is not None and world.values("agent") == [value] * 3
        assert [b["event"] for b in receiver.bodies()] == ["rotation_succeeded"]


class TestOneShotDeduplication:
    """With history.path set, one-shot runs share alert state through a file."""

    def test_cron_runs_do_not_repeat_and_a_healthy_run_resolves(
        self, world: World, receiver: AlertReceiver
    ) -> None:
        """Run 1 alerts, run 2 (within repeat_interval) does not, a fixed run sends recovered."""
        history = world.root / "state" / "history.jsonl"
        world.sections["history"] = {"path": str(history)}
        world.sections["alerts"] = [{"type": "webhook", "url": f"{receiver.url}/hook"}]
        world.add_key("agent", roles=["no-such-role"])
        assert world.rotator("rotate").code == 1
        assert world.rotator("rotate").code == 1
        assert [b["event"] for b in receiver.bodies()] == ["rotation_failed"]
        world.keys[0]["roles"] = ["stackstate-ingest-telemetry"]
        assert world.rotator("rotate").code == 0
        events = [b["event"] for b in receiver.bodies()]
        assert events == ["rotation_failed", "recovered"]
        state = history.with_name(history.name + ".alerts.json")
        assert oct(state.stat().st_mode & 0o777) == "0o600"
