"""``rotator rotate`` with the leader-election Lease: hand over to a live daemon, or hold the Lease.

The daemon is an in-process :class:`~rotator.daemon.service.Service` leading through the Kubernetes
emulator's Lease; ``rotate`` runs through the real CLI (in-process too, another thread's view of
the same emulators). Waits poll for a state with a generous deadline; nothing asserts on how long
anything took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from rotator.clients.kubernetes import KubeClients
from rotator.daemon.leader import LeaderElector, LeaseLock, format_microtime
from rotator.daemon.service import Service
from rotator.handoff import (
    REQUEST_ANNOTATION,
    RESPONSE_ANNOTATION,
    ROLE_ANNOTATION,
    RunRequest,
    RunResponse,
)
from tests.plugins.world import NAMESPACE, World

DEADLINE = 30.0
LEASE = "stackstate-key-rotator"
#: Short election timings, so a takeover of an expired Lease happens within the test.
ELECTION = {
    "enabled": True,
    "namespace": NAMESPACE,
    "lease_duration": "3s",
    "renew_deadline": "2s",
    "retry_period": "1s",
}


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def lease(world: World) -> dict[str, Any] | None:
    """The Lease as the emulator stores it."""
    return world.kube.get("leases", NAMESPACE, LEASE)


def annotations(world: World) -> dict[str, str]:
    """The Lease's annotations (empty without a Lease)."""
    return dict(((lease(world) or {}).get("metadata") or {}).get("annotations") or {})


def holder(world: World) -> str:
    """The Lease's holder ("" when released or absent)."""
    return str(((lease(world) or {}).get("spec") or {}).get("holderIdentity") or "")


@pytest.fixture
def agent(world: World) -> World:
    """One managed key ``agent`` consumed by a Deployment, bootstrapped and settled, with the
    leader-election section configured."""
    world.add_key_with_workload("agent")
    world.settle()
    # settle() ran the CLI, which logs to the captured stderr of this setup phase (closed
    # before the test's threads log): back to the default logger.
    structlog.reset_defaults()
    world.sections["leader_election"] = dict(ELECTION)
    world.sections["server"] = {"listen": "127.0.0.1:0"}
    return world


@pytest.fixture
def daemon(agent: World) -> Iterator[Service]:
    """A daemon leading through the Lease (its first reconcile run already done)."""
    agent.sections["leader_election"] = {**ELECTION, "identity": "daemon-1"}
    service = Service(agent.write_config())
    service.start()
    agent.sections["leader_election"] = dict(ELECTION)
    try:
        wait_for(service.is_leader, "the daemon to lead")
        wait_for(
            lambda: service.metrics.registry.get_sample_value(
                "rotator_last_success_timestamp_seconds", {"key": "agent"}
            ),
            "the daemon's first run",
        )
        yield service
    finally:
        # The CLI runs logged to the test's captured stderr, closed by now: log to stdout again.
        structlog.reset_defaults()
        service.stop(timeout=10)


class TestHandOverToTheLeader:
    """A live daemon holds the Lease: ``rotate`` hands the request over and prints the outcome."""

    def test_force_is_run_by_the_leader_and_its_outcome_printed(
        self, agent: World, daemon: Service
    ) -> None:
        """``rotate --force -o json`` returns the leader's report: the key rotated, exit 0."""
        (old,) = agent.managed_keys("service-token", "agent")
        result = agent.rotator("rotate", "--force", "--output", "json")
        assert result.code == 0, result.out + result.err
        document = json.loads(result.out)
        assert document["handed_over"]["leader"] == "daemon-1"
        assert document["handed_over"]["state"] == "done"
        (key,) = document["keys"]
        assert (key["key"], key["decision"], key["outcome"]) == ("agent", "rotate", "rotated")
        # The daemon did it: a new key, pushed to every target; the old one still there (I2).
        keys = agent.managed_keys("service-token", "agent")
        assert len(keys) == 2 and old["id"] in [k["id"] for k in keys]
        new = next(k for k in keys if k["id"] != old["id"])
        value = agent.stackstate.value_of("service-token", new["id"])
        assert agent.values("agent") == [value, value, value]
        response = json.loads(annotations(agent)[RESPONSE_ANNOTATION])
        assert response["id"] == document["handed_over"]["request_id"]
        assert response["state"] == "done"
        assert holder(agent) == "daemon-1"  # the requester never took the Lease

    def test_text_output_names_the_leader(self, agent: World, daemon: Service) -> None:
        """The text form is the usual per-key block and a summary naming the leader."""
        result = agent.rotator("rotate", "--force")
        assert result.code == 0, result.out + result.err
        assert "agent (service-token)" in result.out
        assert "outcome:  rotated" in result.out
        assert "1 managed key: 1 rotated (run by leader daemon-1)" in result.out

    def test_no_wait_returns_once_handed_over(self, agent: World, daemon: Service) -> None:
        """``--no-wait`` exits 0 as soon as the request is in the Lease; the leader runs it."""
        result = agent.rotator("rotate", "--force", "--no-wait", "--output", "json")
        assert result.code == 0, result.out + result.err
        document = json.loads(result.out)
        assert document["keys"] == []
        handed = document["handed_over"]
        assert (handed["leader"], handed["state"]) == ("daemon-1", "pending")
        response = wait_for(
            lambda: (
                (text := annotations(agent).get(RESPONSE_ANNOTATION))
                and (answer := json.loads(text))["id"] == handed["request_id"]
                and answer["state"] == "done"
                and answer
            ),
            "the leader's answer",
        )
        assert [k["outcome"] for k in response["report"]["keys"]] == ["rotated"]
        assert len(agent.managed_keys("service-token", "agent")) == 2

    def test_an_unknown_key_is_a_usage_error_before_handing_over(
        self, agent: World, daemon: Service
    ) -> None:
        """``--key`` naming no managed key exits 2 and writes no request into the Lease."""
        result = agent.rotator("rotate", "--force", "--key", "nope")
        assert result.code == 2
        assert "no such managed key" in result.err
        assert REQUEST_ANNOTATION not in annotations(agent)


class TestNoLiveLeader:
    """No daemon holds the Lease: ``rotate`` holds it for its run and releases it after."""

    def test_takes_the_lease_for_the_run_and_releases_it(self, agent: World) -> None:
        """Without a Lease the run creates it, rotates, and leaves it released (no holder)."""
        assert lease(agent) is None
        result = agent.rotator("rotate", "--force", "--output", "json")
        assert result.code == 0, result.out + result.err
        assert [k["outcome"] for k in json.loads(result.out)["keys"]] == ["rotated"]
        assert holder(agent) == ""
        assert ROLE_ANNOTATION not in annotations(agent)
        puts = [r for r in agent.kube.log if r.method in ("POST", "PUT") and "/leases" in r.path]
        assert puts, "the run wrote the Lease"

    def test_takes_over_a_lease_its_holder_stopped_renewing(self, agent: World) -> None:
        """A Lease held by a daemon that no longer renews is taken once it expires."""
        stale = datetime.now(UTC) - timedelta(minutes=5)
        agent.kube.apply(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": LEASE,
                    "namespace": NAMESPACE,
                    "annotations": {ROLE_ANNOTATION: "daemon"},
                },
                "spec": {
                    "holderIdentity": "dead-daemon",
                    "leaseDurationSeconds": 3,
                    "acquireTime": format_microtime(stale),
                    "renewTime": format_microtime(stale),
                },
            }
        )
        result = agent.rotator("rotate", "--force", "--output", "json")
        assert result.code == 0, result.out + result.err
        assert [k["outcome"] for k in json.loads(result.out)["keys"]] == ["rotated"]
        assert holder(agent) == ""
        assert REQUEST_ANNOTATION not in annotations(agent)

    def test_waits_for_another_run_and_gives_up_after_the_timeout(self, agent: World) -> None:
        """A Lease renewed by another one-shot run: no hand-over, exit 1 after --wait-timeout."""
        clients = KubeClients(agent.kubeconfig, "sandbox")
        other = LeaderElector(
            LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="rotate-other-1"),
            identity="rotate-other-1",
            lease_duration=3,
            renew_deadline=2,
            retry_period=0.5,
            on_started_leading=lambda: None,
            on_stopped_leading=lambda: None,
            holder_annotations={ROLE_ANNOTATION: "run"},
        )
        other.start()
        try:
            wait_for(lambda: holder(agent) == "rotate-other-1", "the other run to hold the Lease")
            agent.stackstate.clear_log()
            result = agent.rotator("rotate", "--force", "--wait-timeout", "2s")
        finally:
            other.stop(release=True)
            clients.close()
        assert result.code == 1
        assert "held by another rotate run" in result.err
        assert [r for r in agent.stackstate.log if r.method in ("POST", "DELETE")] == []
        assert REQUEST_ANNOTATION not in annotations(agent)


def write_request(world: World, request: RunRequest) -> None:
    """Put ``request`` into the Lease as a requester would."""
    with KubeClients(world.kubeconfig, "sandbox") as clients:
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="test")
        assert lock.update_annotations(lambda a: {**a, REQUEST_ANNOTATION: request.to_json()})


def answer_to(world: World, request_id: str) -> dict[str, Any] | None:
    """The leader's final answer to ``request_id``, once written."""
    text = annotations(world).get(RESPONSE_ANNOTATION)
    answer = json.loads(text) if text else None
    if answer is None or answer["id"] != request_id or answer["state"] == "running":
        return None
    return dict(answer)


class TestLeaderSide:
    """What the leader answers to requests it must not run."""

    def test_a_request_naming_an_unknown_key_is_refused(
        self, agent: World, daemon: Service
    ) -> None:
        """The leader's configuration decides: an unknown key is refused, nothing runs."""
        now = datetime.now(UTC)
        request = RunRequest("bad-key", ("nope",), True, "test", now, now + timedelta(minutes=1))
        agent.stackstate.clear_log()
        write_request(agent, request)
        answer = wait_for(lambda: answer_to(agent, "bad-key"), "the refusal")
        assert answer["state"] == "refused"
        assert "no such managed key on the leader: nope" in answer["error"]
        assert [r for r in agent.stackstate.log if r.method in ("POST", "DELETE")] == []

    def test_an_expired_request_is_not_run(self, agent: World, daemon: Service) -> None:
        """Nobody waits for a request past its expiry: answered expired, nothing runs."""
        then = datetime.now(UTC) - timedelta(minutes=10)
        request = RunRequest("late", (), True, "test", then, then + timedelta(minutes=5))
        agent.stackstate.clear_log()
        write_request(agent, request)
        answer = wait_for(lambda: answer_to(agent, "late"), "the expiry answer")
        assert answer["state"] == "expired"
        assert [r for r in agent.stackstate.log if r.method in ("POST", "DELETE")] == []

    def test_a_request_claimed_by_a_stopped_leader_is_reported_interrupted(
        self, agent: World, daemon: Service
    ) -> None:
        """A ``running`` answer this daemon did not write: its leader died; not run again."""
        now = datetime.now(UTC)
        request = RunRequest("orphan", (), True, "test", now, now + timedelta(minutes=1))
        claimed = RunResponse("orphan", "running", "dead-daemon", started_at=now)
        agent.stackstate.clear_log()
        with KubeClients(agent.kubeconfig, "sandbox") as clients:
            lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="test")
            assert lock.update_annotations(
                lambda a: {
                    **a,
                    REQUEST_ANNOTATION: request.to_json(),
                    RESPONSE_ANNOTATION: claimed.to_json(),
                }
            )
        answer = wait_for(lambda: answer_to(agent, "orphan"), "the interrupted answer")
        assert answer["state"] == "interrupted"
        assert "dead-daemon stopped while running it" in answer["error"]
        assert [r for r in agent.stackstate.log if r.method in ("POST", "DELETE")] == []
