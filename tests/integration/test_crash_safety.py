"""Invariant I7: a real ``rotator rotate`` process killed with SIGKILL at each step boundary,
then run again, converges with I1-I3 holding, no duplicate keys and no second restart.

The emulators hold the request that marks the boundary (before it is processed, or after it
changed state but before the answer), the test kills the process while it waits, then the
request is dropped (``abort``) or let through (``release``) exactly as a dying client would
leave it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rotator_sandbox._server import Hold
from tests.plugins.world import NAMESPACE, World

TIMEOUT = 60
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/agent"


@pytest.fixture
def crash_world(world: World) -> Iterator[World]:
    """One managed key in three targets, consumed by a Deployment; bootstrapped and settled."""
    world.defaults = {"orphan_min_age": "1s"}
    world.add_key_with_workload("agent")
    world.settle()
    yield world


def kill_at(world: World, hold: Hold, *args: str, abort: bool = True) -> None:
    """Run ``rotator rotate ARGS`` as a process, SIGKILL it at ``hold``, then settle the hold."""
    config = world.write_config()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rotator.cli",
            "--log-format",
            "json",
            "--config",
            str(config),
            "rotate",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert hold.wait_arrived(TIMEOUT), "the process never reached the step boundary"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
        if abort:
            hold.abort()
        else:
            hold.release()


def assert_converged(world: World) -> None:
    """I1-I3 and no duplicates: one live managed key, held by every target, names unique."""
    keys = world.managed_keys("service-token", "agent")
    names = [k["name"] for k in keys]
    assert len(names) == len(set(names)), f"duplicate key names: {names}"
    assert len(keys) == 1, f"expected exactly one live managed key, found {names}"
    (live,) = keys
    value = world.stackstate.value_of("service-token", live["id"])
    assert world.values("agent") == [value, value, value]  # I1 + I3: held and referenced


class TestKillAtEachStep:
    """SIGKILL at each step boundary, then rerun: converged, no duplicate, no second restart."""

    def test_after_create(self, crash_world: World) -> None:
        """Killed after the create (before verify): the orphan is swept on a later run."""
        world = crash_world
        hold = world.stackstate.hold("GET", r"/api/user/authorization/for")
        kill_at(world, hold, "--force")
        assert len(world.managed_keys("service-token", "agent")) == 2
        time.sleep(1.1)  # let the orphan reach orphan_min_age (1s); not an assertion on timing
        world.settle()
        assert_converged(world)

    def test_mid_push(self, crash_world: World) -> None:
        """Killed while writing the second target: the rerun repairs, restarts once, revokes."""
        world = crash_world
        hold = world.vault.hold("POST", r"/v1/secret/data/stackstate/agent")
        world.kube.clear_log()
        kill_at(world, hold, "--force")
        secret, vaulted, _ = world.values("agent")
        assert secret != vaulted
        world.settle()
        assert_converged(world)
        assert world.restarts("deployments", "agent") == 1

    def test_after_push(self, crash_world: World) -> None:
        """Killed after every push, before the restart: the rerun restarts exactly once."""
        world = crash_world
        world.kube.clear_log()
        hold = world.kube.hold("PATCH", DEPLOYMENT)  # the restart, after every push
        kill_at(world, hold, "--force")
        assert world.restarts("deployments", "agent") == 0
        world.settle()
        assert_converged(world)
        assert world.restarts("deployments", "agent") == 1

    def test_after_restart(self, crash_world: World) -> None:
        """Killed after the restart was applied: the rerun does not restart again."""
        world = crash_world
        world.kube.clear_log()
        hold = world.kube.hold("PATCH", DEPLOYMENT, after_processing=True)
        kill_at(world, hold, "--force", abort=False)
        assert world.restarts("deployments", "agent") == 1
        world.settle()
        assert_converged(world)
        assert world.restarts("deployments", "agent") == 1

    def test_before_revoke(self, crash_world: World) -> None:
        """Killed while deleting the previous key: the rerun revokes it, nothing restarts."""
        world = crash_world
        assert world.rotator("rotate", "--force").code == 0
        world.kube.clear_log()
        keys = world.managed_keys("service-token", "agent")
        assert len(keys) == 2
        hold = world.stackstate.hold("DELETE", r"/api/security/tokens/\d+")
        kill_at(world, hold)
        assert len(world.managed_keys("service-token", "agent")) == 2
        world.settle()
        assert_converged(world)
        assert world.restarts("deployments", "agent") == 0
