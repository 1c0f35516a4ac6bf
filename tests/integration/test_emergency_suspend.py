"""``rotate --key K --emergency`` and ``suspend: true`` end to end, through the real CLI against
the StackState, Vault and Kubernetes emulators over HTTP."""

from __future__ import annotations

import json

import pytest

from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.world import NAMESPACE, World


def live_ids(world: World) -> set[int]:
    return {k["id"] for k in world.managed_keys("service-token", "agent")}


@pytest.fixture
def leaked(world: World, receiver: AlertReceiver) -> World:
    """Managed key ``agent`` read by Deployment ``agent``, settled, with a one-day grace period
    (which an emergency must not wait for) and a webhook for every default alert."""
    world.defaults.update({"grace_period": "1d", "schedule": {"recheck": "1s"}})
    world.sections["alerts"] = [{"type": "webhook", "url": f"{receiver.url}/hook"}]
    world.add_key_with_workload("agent")
    world.settle()
    return world


class TestEmergency:
    def test_rotates_and_revokes_the_old_key_once_consumers_switched(
        self, leaked: World, receiver: AlertReceiver
    ) -> None:
        (old,) = live_ids(leaked)
        result = leaked.rotator("rotate", "--key", "agent", "--emergency")
        assert result.code == 0, result.out + result.err
        (new,) = live_ids(leaked)  # the old key is gone, without waiting a day
        assert new != old
        assert leaked.secret_value("agent") == leaked.stackstate.value_of("service-token", new)
        assert leaked.restarts("deployments", "agent") == 2  # bootstrap, emergency
        assert "emergency rotation of agent complete" in result.err
        assert "EMERGENCY (rotate --emergency)" in result.out
        alerts = [b for b in receiver.bodies() if b["event"] == "emergency_rotation"]
        assert len(alerts) == 1
        assert alerts[0]["severity"] == "critical"
        assert "EMERGENCY rotation" in alerts[0]["summary"]
        for value in leaked.secret_values():
            assert value not in result.out + result.err + json.dumps(receiver.bodies())

    def test_never_revokes_when_a_consumer_does_not_switch(
        self, world: World, receiver: AlertReceiver
    ) -> None:
        world.defaults.update(
            {"grace_period": "1d", "switch_timeout": "2s", "schedule": {"recheck": "1s"}}
        )
        world.sections["alerts"] = [{"type": "webhook", "url": f"{receiver.url}/hook"}]
        world.add_key_with_workload("agent", "DaemonSet")
        world.settle()
        (old,) = live_ids(world)
        world.kube.stall("DaemonSet", NAMESPACE, "agent")
        result = world.rotator("rotate", "--key", "agent", "--emergency")
        assert result.code == 1, result.out + result.err
        assert old in live_ids(world)  # I2: still live, the consumer never switched
        assert len(live_ids(world)) == 2
        assert "NOT complete" in result.err
        events = [b["event"] for b in receiver.bodies()]
        assert "emergency_rotation" in events
        assert "switch_timeout" in events

    def test_dry_run_prints_the_plan_and_changes_nothing(self, leaked: World) -> None:
        before = live_ids(leaked)
        writes = len(leaked.mutating_requests()["stackstate"])
        result = leaked.rotator("rotate", "--key", "agent", "--emergency", "--dry-run")
        assert result.code == 0, result.out + result.err
        assert "EMERGENCY (rotate --emergency)" in result.out
        assert "without the grace period" in result.out
        assert live_ids(leaked) == before
        assert len(leaked.mutating_requests()["stackstate"]) == writes

    @pytest.mark.parametrize(
        "args",
        [("--emergency",), ("--emergency", "--key", "agent", "--key", "other")],
        ids=["no-key", "two-keys"],
    )
    def test_needs_exactly_one_key(self, world: World, args: tuple[str, ...]) -> None:
        world.add_key("agent")
        world.add_key("other")
        result = world.rotator("rotate", *args)
        assert result.code == 2
        assert "--emergency needs exactly one --key" in result.err
        assert world.managed_keys("service-token", "agent") == []


class TestSuspend:
    def test_observed_and_reported_never_acted_on(self, world: World) -> None:
        world.add_key("agent", suspend=True)
        before = world.mutating_requests()
        for args in (("rotate",), ("rotate", "--force", "--key", "agent")):
            result = world.rotator(*args, "-o", "json")
            (key,) = json.loads(result.out)["keys"]
            assert (key["decision"], key["outcome"], key["actions"]) == (
                "suspended",
                "unchanged",
                [],
            )
        assert world.managed_keys("service-token", "agent") == []
        assert world.values("agent") == [None, None, None]
        assert world.mutating_requests() == before
        status = world.rotator("status", "--key", "agent")
        assert status.code == 0
        assert "suspended" in status.out

    def test_force_on_a_suspended_key_exits_1_and_emergency_is_refused(self, world: World) -> None:
        world.add_key("agent", suspend=True)
        assert world.rotator("rotate", "--force", "--key", "agent").code == 1
        refused = world.rotator("rotate", "--emergency", "--key", "agent")
        assert refused.code == 2
        assert "suspended" in refused.err

    def test_check_config_shows_it(self, world: World) -> None:
        world.add_key("agent", suspend=True)
        world.add_key("other")
        result = world.rotator("check-config")
        assert result.code == 0
        lines = {line.strip().split(":")[0]: line for line in result.out.splitlines()}
        assert "SUSPENDED" in lines["agent"]
        assert "SUSPENDED" not in lines["other"]
