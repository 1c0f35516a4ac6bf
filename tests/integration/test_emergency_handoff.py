"""``rotate --emergency`` handed over to a leader daemon: the leader rotates with emergency, its
rechecks revoke the old key without the grace period once the consumers switched, and it
records Kubernetes Events through the daemon's publish path."""

from __future__ import annotations

import json

import pytest
import structlog

# ``daemon``: test_handoff's leading daemon, here over this module's ``agent``.
from tests.integration.test_handoff import ELECTION, daemon, wait_for  # noqa: F401
from tests.plugins.world import NAMESPACE, World


@pytest.fixture
def agent(world: World) -> World:
    """Managed key ``agent`` read by a Deployment, settled, a one-day grace period, rechecks
    every second, and the leader-election section configured."""
    world.defaults.update({"grace_period": "1d", "schedule": {"recheck": "1s"}})
    world.add_key_with_workload("agent")
    world.settle()
    structlog.reset_defaults()
    world.sections["leader_election"] = dict(ELECTION)
    world.sections["server"] = {"listen": "127.0.0.1:0"}
    return world


@pytest.mark.usefixtures("daemon")
def test_the_leader_rotates_and_revokes_without_the_grace_period(agent: World) -> None:
    (old,) = agent.managed_keys("service-token", "agent")
    result = agent.rotator("rotate", "--key", "agent", "--emergency", "--output", "json")
    assert result.code == 0, result.out + result.err
    document = json.loads(result.out)
    assert document["handed_over"]["state"] == "done"
    (key,) = document["keys"]
    assert (key["decision"], key["outcome"]) == ("rotate", "rotated")
    assert key["reason"].startswith("EMERGENCY (rotate --emergency)")
    # The daemon's rechecks see the Deployment switched and revoke at once (grace is 1 day).
    wait_for(
        lambda: old["id"] not in [k["id"] for k in agent.managed_keys("service-token", "agent")],
        "the old key to be revoked",
    )
    (new,) = agent.managed_keys("service-token", "agent")
    assert agent.secret_value("agent") == agent.stackstate.value_of("service-token", new["id"])
    reasons = wait_for(
        lambda: (
            found
            if "Revoked"
            in (
                found := [
                    e["reason"]
                    for e in sorted(
                        agent.kube.objects("events", NAMESPACE),
                        key=lambda e: e["metadata"]["creationTimestamp"],
                    )
                    if e["involvedObject"]["kind"] == "Secret"
                ]
            )
            else None
        ),
        "the daemon's Revoked Event",
    )
    assert reasons[-3:] == ["Rotated", "SwitchedOver", "Revoked"]
