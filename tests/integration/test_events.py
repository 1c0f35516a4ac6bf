"""Kubernetes Events (``rotator.events``) over real HTTP to the Kubernetes emulator: what a run
emits on the managed Secret and the restarted workloads, series deduplication (count and
lastTimestamp PATCHed), no key value in any Event, and emission that never fails a rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotator.clients.kubernetes import KubeClients
from rotator.engine.model import CurrentKey, Failure, KeyPlan, KeyResult, RunReport
from rotator.events import COMPONENT, EventRecorder, PlannedEvent, Subject, events_for
from rotator.targets.kubernetes import KubernetesSecretTarget
from tests.plugins.kubernetes import Kubectl
from tests.plugins.world import NAMESPACE, World


def events(world: World, *, name: str | None = None) -> list[dict[str, Any]]:
    """Events in NAMESPACE (about object ``name`` when given), oldest first."""
    found = [
        e
        for e in world.kube.objects("events", NAMESPACE)
        if name is None or e["involvedObject"]["name"] == name
    ]
    return sorted(found, key=lambda e: e["metadata"]["creationTimestamp"])


def reasons(found: list[dict[str, Any]]) -> list[str]:
    return [e["reason"] for e in found]


class TestEmitted:
    def test_rotation_emits_on_the_secret_and_the_restarted_workload(self, world: World) -> None:
        world.add_key_with_workload("agent")
        assert world.rotator("rotate").code == 0
        (rotated,) = events(world, name="agent-secrets")
        assert rotated["reason"] == "Rotated"
        assert rotated["type"] == "Normal"
        assert rotated["count"] == 1
        assert rotated["source"]["component"] == COMPONENT
        assert rotated["reportingComponent"] == COMPONENT
        secret = world.kube.get("secrets", NAMESPACE, "agent-secrets")
        assert secret is not None
        assert rotated["involvedObject"] == {
            "apiVersion": "v1",
            "kind": "Secret",
            "namespace": NAMESPACE,
            "name": "agent-secrets",
            "uid": secret["metadata"]["uid"],
        }
        (created,) = world.managed_keys("service-token", "agent")
        assert created["name"] in rotated["message"]
        (restarted,) = events(world, name="agent")
        assert restarted["involvedObject"]["kind"] == "Deployment"
        assert restarted["reason"] == "Rotated"
        assert "restarted" in restarted["message"]

    def test_switch_over_and_revocation(self, world: World) -> None:
        world.add_key_with_workload("agent")
        world.settle()
        assert reasons(events(world, name="agent-secrets")) == ["Rotated", "SwitchedOver"]
        assert world.rotator("rotate", "--force").code == 0
        world.settle()
        assert reasons(events(world, name="agent-secrets")) == [
            "Rotated",
            "SwitchedOver",
            "Rotated",
            "SwitchedOver",
            "Revoked",
        ]
        revoked = events(world, name="agent-secrets")[-1]
        assert "deleted in StackState" in revoked["message"]

    def test_a_dry_run_emits_nothing(self, world: World) -> None:
        world.add_key("agent")
        assert world.rotator("rotate", "--dry-run").code == 0
        assert events(world) == []
        assert not [r for r in world.kube.log if r.path.endswith("/events")]


class TestFailures:
    def test_a_repeated_failure_is_one_event_whose_count_grows(self, world: World) -> None:
        world.add_key("agent")
        world.settle()
        world.kube.forbid("update", "secrets", namespace=NAMESPACE)
        first = world.rotator("rotate", "--force")
        assert first.code == 1
        (failed,) = [e for e in events(world) if e["reason"] == "RotationFailed"]
        assert failed["type"] == "Warning"
        assert failed["count"] == 1
        assert "push failed (fix-permissions" in failed["message"]
        second = world.rotator("rotate", "--force")  # a new process: found by listing
        assert second.code == 1
        (again,) = [e for e in events(world) if e["reason"] == "RotationFailed"]
        assert again["metadata"]["name"] == failed["metadata"]["name"]
        assert again["count"] == 2
        assert again["lastTimestamp"] >= failed["lastTimestamp"]
        patches = [
            r
            for r in world.kube.log
            if r.method == "PATCH" and r.path.endswith(f"/events/{failed['metadata']['name']}")
        ]
        assert len(patches) == 1
        text = json.dumps(events(world))
        for value in world.secret_values():
            assert value not in text

    def test_emission_failure_does_not_fail_the_rotation(self, world: World) -> None:
        world.add_key_with_workload("agent")
        world.kube.forbid("create", "events")
        world.kube.forbid("patch", "events")
        result = world.rotator("rotate")
        assert result.code == 0, result.out + result.err
        assert "rotated" in result.out
        assert events(world) == []
        warnings = [
            json.loads(line) for line in result.err.splitlines() if '"events.not_recorded"' in line
        ]
        # Logged once as a warning for the namespace and status, not once per Event.
        assert [w["level"] for w in warnings] == ["warning"]
        assert warnings[0]["status"] == 403

    def test_a_missing_namespace_is_a_warning_only(self, world: World) -> None:
        world.add_key("agent")
        world.settle()
        world.kube.forbid("update", "secrets", namespace=NAMESPACE)
        world.kube.delete("namespaces", "", NAMESPACE)
        result = world.rotator("rotate", "--force")
        assert result.code == 1  # the push failed; the Event could not be written either
        assert "events.not_recorded" in result.err


# -- the recorder on its own (a daemon keeps one across runs) --------------------------------


@pytest.fixture
def clients(world: World) -> Iterator[KubeClients]:
    kube = KubeClients(world.kubeconfig, "sandbox")
    yield kube
    kube.close()


def failed_result(key: str = "agent") -> KeyResult:
    failure = Failure("switch", "human", "SwitchTimeout", "consumers did not switch")
    plan = KeyPlan(
        key=key,
        kind="service-token",
        decision="blocked",
        reason="switch_timeout",
        current=CurrentKey(7, f"{key}-20260101T000000Z", None),
        failed=True,
        failure=failure,
    )
    return KeyResult(plan, "failed", "switch_timeout", failure=failure)


class TestRecorder:
    def test_series_in_memory_and_anew_after_the_event_expired(
        self, world: World, clients: KubeClients
    ) -> None:
        world.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-secrets", "namespace": NAMESPACE},
            }
        )
        now = [datetime(2026, 1, 1, tzinfo=UTC)]
        recorder = EventRecorder(clients, clock=lambda: now[0], instance="pod-1")
        subject = Subject(None, "v1", "Secret", NAMESPACE, "agent-secrets")
        planned = PlannedEvent(subject, "Warning", "RotationFailed", "switch failed")
        assert recorder.record(planned)
        now[0] += timedelta(minutes=1)
        assert recorder.record(planned)
        (event,) = events(world)
        assert event["count"] == 2
        assert event["lastTimestamp"] == "2026-01-01T00:01:00Z"
        assert event["firstTimestamp"] == "2026-01-01T00:00:00Z"
        lists = [r for r in world.kube.log if r.method == "GET" and r.path.endswith("/events")]
        assert len(lists) == 1  # the second one came from memory
        # The API server dropped it (event TTL): PATCH answers 404, a new series starts.
        world.kube.delete("events", NAMESPACE, event["metadata"]["name"])
        now[0] += timedelta(minutes=1)
        assert recorder.record(planned)
        (fresh,) = events(world)
        assert fresh["count"] == 1
        # Outside the window the same message is a new Event.
        now[0] += timedelta(hours=2)
        assert recorder.record(planned)
        assert [e["count"] for e in events(world)] == [1, 1]

    def test_one_list_per_namespace_and_run(self, world: World) -> None:
        for name in ("a", "b", "c"):
            world.add_key(name)
        assert world.rotator("rotate").code == 0
        assert len(events(world)) == 3
        lists = [r for r in world.kube.log if r.method == "GET" and r.path.endswith("/events")]
        assert len(lists) == 1  # not one per changed object: that grew with the namespace

    def test_a_series_is_found_on_a_later_page(self, world: World, clients: KubeClients) -> None:
        subject = Subject(None, "v1", "Secret", NAMESPACE, "agent-secrets")
        planned = PlannedEvent(subject, "Warning", "RotationFailed", "switch failed")
        first = EventRecorder(clients, instance="pod-1")
        assert first.record(planned)
        for i in range(600):  # other objects' Events of this component, listed before ours
            world.kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": f"aaa-{i:04d}", "namespace": NAMESPACE},
                    "involvedObject": {"kind": "Secret", "namespace": NAMESPACE, "name": f"s{i}"},
                    "reason": "Rotated",
                    "message": "other",
                    "type": "Normal",
                    "count": 1,
                    "source": {"component": COMPONENT},
                }
            )
        before = len(world.kube.log)
        assert EventRecorder(clients, instance="pod-2").record(planned)  # a new process
        assert [e["count"] for e in events(world, name="agent-secrets")] == [2]
        later = world.kube.log[before:]
        lists = [r for r in later if r.method == "GET" and r.path.endswith("/events")]
        assert len(lists) == 2  # 500 a page

    def test_other_message_is_another_event(self, world: World, clients: KubeClients) -> None:
        recorder = EventRecorder(clients, instance="pod-1")
        subject = Subject(None, "v1", "Secret", NAMESPACE, "agent-secrets")
        assert recorder.record(PlannedEvent(subject, "Normal", "Rotated", "one"))
        assert recorder.record(PlannedEvent(subject, "Normal", "Rotated", "two"))
        assert sorted(e["message"] for e in events(world)) == ["one", "two"]
        # Without the Secret the Event is still written, without a uid.
        assert all("uid" not in e["involvedObject"] for e in events(world))

    def test_publish_writes_a_failure_on_each_secret_and_nothing_for_a_dry_run(
        self, world: World, clients: KubeClients
    ) -> None:
        target = KubernetesSecretTarget(
            clients, namespace=NAMESPACE, name="agent-secrets", key="STS_API_KEY"
        )
        world.add_key("agent")
        world.write_config()
        from rotator.config import load_config
        from rotator.wiring import key_spec

        (managed,) = load_config(world.config_path).keys
        spec = key_spec(managed, [target])
        recorder = EventRecorder(clients, instance="pod-1")
        now = datetime.now(UTC)
        dry = RunReport(dry_run=True, started_at=now, results=(failed_result(),))
        from rotator.events import publish_events

        publish_events(recorder, dry, [spec])
        assert events(world) == []
        report = RunReport(dry_run=False, started_at=now, results=(failed_result(),))
        assert recorder.publish(report, [spec]) == 1
        (event,) = events(world)
        assert event["reason"] == "RotationFailed"
        assert event["message"].startswith(
            "managed key agent: switch failed (human, SwitchTimeout)"
        )
        assert [e.reason for e in events_for(failed_result(), spec)] == ["RotationFailed"]


def test_kubectl_shows_the_series(world: World, kubectl: Kubectl) -> None:
    """Real kubectl: ``kubectl events --for secret/...`` lists the rotator's Events with their
    count (``describe secret`` prints no Events for Secrets); ``describe deployment`` shows the
    restart's Event."""
    world.add_key_with_workload("agent")
    world.settle()
    world.kube.forbid("update", "secrets", namespace=NAMESPACE)
    for _ in range(2):
        assert world.rotator("rotate", "--force").code == 1
    listed = kubectl("events", "--for", "secret/agent-secrets", "-n", NAMESPACE)
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout
    assert "Rotated" in text and "SwitchedOver" in text
    (line,) = [row for row in text.splitlines() if "RotationFailed" in row]
    assert "Warning" in line and "(x2 over" in line
    described = kubectl("describe", "deployment", "agent", "-n", NAMESPACE)
    assert described.returncode == 0, described.stderr
    assert "Rotated" in described.stdout.split("Events:", 1)[1]
    assert COMPONENT in described.stdout.split("Events:", 1)[1]
