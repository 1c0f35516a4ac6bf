"""Tests for the kubernetes-workload consumer: the official client over HTTP to the emulator."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rotator.clients.kubernetes import KubeClients
from rotator.consumers.base import Consumer, SwitchRequest, SwitchState
from rotator.consumers.kubernetes_workload import (
    PAUSED_REFUSAL,
    PUSHED_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    KubernetesWorkloadConsumer,
    map_error,
    read_records,
    rollout_status,
    template_hash,
)
from rotator.errors import (
    ConfigError,
    ConsumerConflict,
    ConsumerForbidden,
    ConsumerInvalid,
    ConsumerUnavailable,
)
from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.kubernetes import KubeClock, Kubectl

NAMESPACE = "monitoring"
NAME = "sts-agent"
ROLLOUT = 60.0
PLURALS = {"Deployment": "deployments", "DaemonSet": "daemonsets", "StatefulSet": "statefulsets"}
FP_A = "fp-aaaa-0001"
FP_B = "fp-bbbb-0002"
FP_NEWER = "fp-cccc-0003"


def path_of(kind: str, name: str = NAME) -> str:
    """The path regex of one workload."""
    return rf"^/apis/apps/v1/namespaces/{NAMESPACE}/{PLURALS[kind]}/{name}$"


def stored(kube: KubernetesEmulator, kind: str = "Deployment", name: str = NAME) -> dict[str, Any]:
    """The workload as the emulator stores it."""
    obj = kube.get(PLURALS[kind], NAMESPACE, name)
    assert obj is not None
    return obj


def records(kube: KubernetesEmulator, kind: str = "Deployment") -> dict[str, Any]:
    """The parsed record annotation of the workload."""
    annotations = stored(kube, kind)["metadata"].get("annotations") or {}
    parsed: dict[str, Any] = json.loads(annotations[PUSHED_ANNOTATION])
    return parsed


def current_hash(kube: KubernetesEmulator, kind: str = "Deployment") -> str:
    """The template hash of the stored workload."""
    return template_hash(stored(kube, kind)["spec"]["template"])


def patches(kube: KubernetesEmulator) -> list[Any]:
    """Logged PATCH requests."""
    return [r for r in kube.log if r.method == "PATCH"]


def only(states: list[SwitchState]) -> SwitchState:
    """The single state of a named-workload observation."""
    assert len(states) == 1
    return states[0]


@pytest.fixture
def ckube(
    make_kube: Callable[..., KubernetesEmulator], kube_clock: KubeClock
) -> KubernetesEmulator:
    """An emulator on the frozen clock whose rollouts take ROLLOUT seconds."""
    return make_kube(clock=kube_clock, rollout_seconds=ROLLOUT)


@pytest.fixture
def ckubeconfig(ckube: KubernetesEmulator, tmp_path: Path) -> Path:
    """A kubeconfig (context ``sandbox``) pointing at ``ckube``."""
    return ckube.write_kubeconfig(tmp_path / "ckubeconfig")


@pytest.fixture
def clients(ckubeconfig: Path) -> Iterator[KubeClients]:
    """Clients for ``ckube``, closed at teardown."""
    with KubeClients(ckubeconfig, request_timeout=5.0) as built:
        yield built


@pytest.fixture
def make_consumer(
    clients: KubeClients, kube_clock: KubeClock
) -> Callable[..., KubernetesWorkloadConsumer]:
    """Factory of consumers on ``ckube`` (named NAME unless a selector is given)."""

    def make(kind: str = "Deployment", **kwargs: Any) -> KubernetesWorkloadConsumer:
        options: dict[str, Any] = {
            "namespace": NAMESPACE,
            "clock": kube_clock,
            "conflict_backoff": 0.0,
        }
        if "selector" not in kwargs:
            options["name"] = NAME
        options.update(kwargs)
        return KubernetesWorkloadConsumer(clients, kind=kind, **options)

    return make


@pytest.fixture
def make_request(kube_clock: KubeClock) -> Callable[..., SwitchRequest]:
    """Factory of switch requests pushed a minute before the clock's start."""

    def make(managed_key: str = "agent", fp: str = FP_A) -> SwitchRequest:
        return SwitchRequest(managed_key, fp, kube_clock() - timedelta(minutes=1))

    return make


class TestIdentity:
    """Id, description and construction."""

    def test_satisfies_the_consumer_protocol(
        self, make_consumer: Callable[..., KubernetesWorkloadConsumer]
    ) -> None:
        """The class implements the Consumer Protocol."""
        assert isinstance(make_consumer(), Consumer)

    def test_id_names_context_namespace_kind_and_name(self, clients: KubeClients) -> None:
        """A named consumer's id is kubernetes-workload:ctx/ns/Kind/name, context 'default'."""
        plain = KubernetesWorkloadConsumer(clients, namespace="ns", kind="Deployment", name="x")
        other = KubernetesWorkloadConsumer(
            clients, namespace="ns", kind="DaemonSet", name="y", context="prod"
        )
        assert plain.id == "kubernetes-workload:default/ns/Deployment/x"
        assert other.id == "kubernetes-workload:prod/ns/DaemonSet/y"

    def test_id_names_the_default_context_when_none_is_given(self, ckubeconfig: Path) -> None:
        """Without its own context the id names the configured default context, so consumers
        naming that context explicitly share the workload id."""
        with KubeClients(ckubeconfig, default_context="sandbox") as clients:
            implicit = KubernetesWorkloadConsumer(
                clients, namespace="ns", kind="Deployment", name="x"
            )
            explicit = KubernetesWorkloadConsumer(
                clients, namespace="ns", kind="Deployment", name="x", context="sandbox"
            )
            assert implicit.id == explicit.id == "kubernetes-workload:sandbox/ns/Deployment/x"
            assert implicit.describe() == "restart Deployment ns/x (context sandbox)"

    def test_selector_id_lists_sorted_labels(self, clients: KubeClients) -> None:
        """A selector consumer's id ends in ?k=v,... with the labels sorted."""
        consumer = KubernetesWorkloadConsumer(
            clients, namespace="ns", kind="StatefulSet", selector={"tier": "a", "app": "b"}
        )
        assert consumer.id == "kubernetes-workload:default/ns/StatefulSet?app=b,tier=a"

    def test_describe_says_what_is_done(self, clients: KubeClients) -> None:
        """The description names the action, the workload and the context."""
        restart = KubernetesWorkloadConsumer(clients, namespace="ns", kind="Deployment", name="x")
        wait = KubernetesWorkloadConsumer(
            clients, namespace="ns", kind="DaemonSet", selector={"app": "a"}, action="wait"
        )
        assert restart.describe() == "restart Deployment ns/x (context default)"
        assert wait.describe() == (
            "wait for Reloader/VSO/ESO to roll DaemonSets matching app=a in namespace ns "
            "(context default)"
        )

    @pytest.mark.parametrize(
        "options",
        [{}, {"name": "x", "selector": {"app": "x"}}, {"selector": {}}],
        ids=["neither", "both", "empty-selector"],
    )
    def test_exactly_one_of_name_and_selector(
        self, clients: KubeClients, options: dict[str, Any]
    ) -> None:
        """Neither, both, or an empty selector is a ConfigError."""
        with pytest.raises(ConfigError, match="exactly one"):
            KubernetesWorkloadConsumer(clients, namespace="ns", kind="Deployment", **options)

    def test_unknown_kind_is_refused(self, clients: KubeClients) -> None:
        """A kind other than Deployment, DaemonSet, StatefulSet is a ConfigError."""
        with pytest.raises(ConfigError, match="kind"):
            KubernetesWorkloadConsumer(clients, namespace="ns", kind="Pod", name="x")  # type: ignore[arg-type]


class TestTemplateHash:
    """The template hash."""

    def test_is_sha256_of_canonical_json_first_16_hex(self) -> None:
        """The hash is the first 16 hex digits of SHA-256 over sorted, compact JSON."""
        template = {"spec": {"containers": [{"name": "a"}]}, "metadata": {"labels": {"x": "1"}}}
        canonical = '{"metadata":{"labels":{"x":"1"}},"spec":{"containers":[{"name":"a"}]}}'
        assert template_hash(template) == hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def test_key_order_does_not_matter(self) -> None:
        """Two templates equal as JSON have the same hash."""
        assert template_hash({"a": 1, "b": {"c": 2, "d": 3}}) == template_hash(
            {"b": {"d": 3, "c": 2}, "a": 1}
        )


class TestReadRecords:
    """Parsing the record annotation."""

    @pytest.mark.parametrize(
        "raw", ["not json", "[1,2]", '{"agent": "x"}', '{"agent": {"fingerprint": 1}}']
    )
    def test_damaged_records_read_as_absent(self, raw: str) -> None:
        """An unparsable annotation or entry reads as no record for that key."""
        workload = {"metadata": {"annotations": {PUSHED_ANNOTATION: raw}}}
        assert read_records(workload) == {}

    def test_entries_of_every_key_are_read(self) -> None:
        """Each managed key's entry is parsed."""
        raw = json.dumps(
            {
                "a": {"fingerprint": "f1", "template": "t1", "at": "2025-06-01T12:00:00Z"},
                "b": {"fingerprint": "f2", "template": "t2"},
            }
        )
        parsed = read_records({"metadata": {"annotations": {PUSHED_ANNOTATION: raw}}})
        assert parsed["a"].fingerprint == "f1"
        assert parsed["b"].template == "t2"
        assert parsed["b"].at == ""


def deployment(status: dict[str, Any]) -> dict[str, Any]:
    """A Deployment at generation 2 wanting 3 replicas, with the given status."""
    return {"metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 3}, "status": status}


class TestRolloutStatus:
    """kubectl's rollout-status rules, as a pure function."""

    @pytest.mark.parametrize(
        ("status", "phase", "message"),
        [
            ({"observedGeneration": 1}, "waiting", "observedGeneration"),
            (
                {
                    "observedGeneration": 2,
                    "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
                },
                "failed",
                "exceeded its progress deadline",
            ),
            ({"observedGeneration": 2, "updatedReplicas": 1}, "waiting", "1/3 updated"),
            (
                {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4},
                "waiting",
                "1 old replicas pending termination",
            ),
            (
                {
                    "observedGeneration": 2,
                    "updatedReplicas": 3,
                    "replicas": 3,
                    "availableReplicas": 2,
                },
                "waiting",
                "2/3 updated replicas available",
            ),
            (
                {
                    "observedGeneration": 2,
                    "updatedReplicas": 3,
                    "replicas": 3,
                    "availableReplicas": 3,
                },
                "complete",
                "3/3 updated and available",
            ),
        ],
        ids=["generation", "deadline", "updated", "old-pods", "available", "complete"],
    )
    def test_deployment_rules(self, status: dict[str, Any], phase: str, message: str) -> None:
        """A Deployment waits for observedGeneration, updated, old and available pods; a
        deadline fails it."""
        verdict = rollout_status("Deployment", deployment(status))
        assert verdict.phase == phase
        assert message in verdict.message

    @pytest.mark.parametrize(
        ("spec", "status", "phase"),
        [
            ({"updateStrategy": {"type": "OnDelete"}}, {"observedGeneration": 2}, "failed"),
            ({}, {"observedGeneration": 1}, "waiting"),
            (
                {},
                {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2},
                "waiting",
            ),
            (
                {},
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 2,
                },
                "waiting",
            ),
            (
                {},
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                },
                "complete",
            ),
        ],
        ids=["on-delete", "generation", "updated", "available", "complete"],
    )
    def test_daemonset_rules(
        self, spec: dict[str, Any], status: dict[str, Any], phase: str
    ) -> None:
        """A DaemonSet needs RollingUpdate and waits for generation, updated and available pods."""
        workload = {"metadata": {"name": "ds", "generation": 2}, "spec": spec, "status": status}
        assert rollout_status("DaemonSet", workload).phase == phase

    @pytest.mark.parametrize(
        ("strategy", "status", "phase"),
        [
            ({"type": "OnDelete"}, {"observedGeneration": 2}, "failed"),
            ({"type": "RollingUpdate"}, {"observedGeneration": 0}, "waiting"),
            ({"type": "RollingUpdate"}, {"observedGeneration": 2, "readyReplicas": 2}, "waiting"),
            (
                {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1},
                "waiting",
            ),
            (
                {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 2},
                "complete",
            ),
            (
                {"type": "RollingUpdate"},
                {
                    "observedGeneration": 2,
                    "readyReplicas": 3,
                    "updateRevision": "s-2",
                    "currentRevision": "s-1",
                },
                "waiting",
            ),
            (
                {"type": "RollingUpdate"},
                {
                    "observedGeneration": 2,
                    "readyReplicas": 3,
                    "updateRevision": "s-2",
                    "currentRevision": "s-2",
                },
                "complete",
            ),
        ],
        ids=[
            "on-delete",
            "never-observed",
            "ready",
            "partition-waiting",
            "partition-done",
            "revision-waiting",
            "revision-done",
        ],
    )
    def test_statefulset_rules(
        self, strategy: dict[str, Any], status: dict[str, Any], phase: str
    ) -> None:
        """A StatefulSet waits for generation and ready pods, then partition or revision."""
        workload = {
            "metadata": {"name": "s", "generation": 2},
            "spec": {"replicas": 3, "updateStrategy": strategy},
            "status": status,
        }
        assert rollout_status("StatefulSet", workload).phase == phase


class TestObserve:
    """Observing before anything was triggered."""

    @pytest.mark.parametrize(
        ("action", "reason"),
        [
            ("restart", "not restarted since the push"),
            ("wait", "recording the push, then waiting for Reloader/VSO/ESO"),
        ],
    )
    def test_needs_trigger_before_anything_was_done(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
        action: str,
        reason: str,
    ) -> None:
        """A rolled-out workload without a record needs a trigger, and observing writes nothing."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer(action=action)
        state = only(consumer.observe(make_request(), frozenset()))
        assert state.phase == "needs-trigger"
        assert state.reason == reason
        assert (
            state.id
            == state.workload
            == f"kubernetes-workload:default/{NAMESPACE}/Deployment/{NAME}"
        )
        assert ckube.mutating_requests() == []

    def test_a_record_of_another_value_needs_a_trigger(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A record for the previous value (another fingerprint) does not count for a new one."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        consumer.trigger(only(consumer.observe(make_request(), frozenset())), [make_request()])
        kube_clock.advance(ROLLOUT)
        assert only(consumer.observe(make_request(), frozenset())).switched
        newer = make_request(fp=FP_NEWER)
        assert only(consumer.observe(newer, frozenset())).phase == "needs-trigger"

    def test_missing_workload_fails(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A named workload that does not exist is a failed state saying so."""
        state = only(make_consumer().observe(make_request(), frozenset()))
        assert state.phase == "failed"
        assert state.reason == f"Deployment {NAME} not found"

    def test_selector_matching_nothing_fails(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A selector that matches no workload is one failed state with the consumer's id."""
        ckube.add_workload("Deployment", NAMESPACE, "other", labels={"app": "other"})
        consumer = make_consumer(selector={"app": "x"})
        state = only(consumer.observe(make_request(), frozenset()))
        assert state.phase == "failed"
        assert state.reason == f"no Deployment matches app=x in namespace {NAMESPACE}"
        assert state.id == consumer.id

    def test_selector_matching_two_workloads_gives_two_states(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Each workload matching the selector gets its own state and workload id."""
        labels = {"app.kubernetes.io/part-of": "agent"}
        ckube.add_workload("DaemonSet", NAMESPACE, "node-agent", labels={**labels, "c": "n"})
        ckube.add_workload("DaemonSet", NAMESPACE, "logs-agent", labels={**labels, "c": "l"})
        ckube.add_workload("DaemonSet", NAMESPACE, "unrelated", labels={"app": "x"})
        consumer = make_consumer("DaemonSet", selector=labels)
        states = consumer.observe(make_request(), frozenset())
        prefix = f"kubernetes-workload:default/{NAMESPACE}/DaemonSet/"
        assert [s.workload for s in states] == [f"{prefix}logs-agent", f"{prefix}node-agent"]
        assert [s.phase for s in states] == ["needs-trigger", "needs-trigger"]

    def test_selector_follows_list_pages(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Workloads spread over several list pages are all observed."""
        for index in range(5):
            ckube.add_workload("Deployment", NAMESPACE, f"w{index}", labels={"app": "w"})
        states = make_consumer(selector={"app": "w"}, page_size=2).observe(
            make_request(), frozenset()
        )
        assert len(states) == 5
        lists = [r for r in ckube.log if r.method == "GET"]
        assert len(lists) == 3

    def test_paused_deployment_with_restart_fails_with_kubectls_words(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A paused Deployment cannot be restarted: failed, in kubectl's words."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        ckube.pause(NAMESPACE, NAME)
        state = only(make_consumer().observe(make_request(), frozenset()))
        assert state.phase == "failed"
        assert state.reason == f"Deployment {NAME}: {PAUSED_REFUSAL}"

    def test_paused_deployment_with_wait_still_needs_the_record(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """In wait mode a paused Deployment is not restarted by us, so the push is recorded."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        ckube.pause(NAMESPACE, NAME)
        state = only(make_consumer(action="wait").observe(make_request(), frozenset()))
        assert state.phase == "needs-trigger"

    @pytest.mark.parametrize("kind", ["DaemonSet", "StatefulSet"])
    def test_on_delete_strategy_fails(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
        kind: str,
    ) -> None:
        """A DaemonSet or StatefulSet with updateStrategy OnDelete is failed in either mode."""
        obj = ckube.add_workload(kind, NAMESPACE, NAME)
        obj["spec"]["updateStrategy"] = {"type": "OnDelete"}
        ckube.apply(obj)
        for action in ("restart", "wait"):
            state = only(make_consumer(kind, action=action).observe(make_request(), frozenset()))
            assert state.phase == "failed"
            assert "OnDelete" in state.reason

    def test_statefulset_partition_fails(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A StatefulSet partition above 0 keeps old pods, so it cannot be switched."""
        obj = ckube.add_workload("StatefulSet", NAMESPACE, NAME, replicas=3)
        obj["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
        ckube.apply(obj)
        state = only(make_consumer("StatefulSet").observe(make_request(), frozenset()))
        assert state.phase == "failed"
        assert "partition 1" in state.reason


class TestRestart:
    """Triggering a restart and following the rollout."""

    def test_trigger_restarts_and_records_the_pre_restart_hash(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """One PATCH sets restartedAt on the template and writes the record with the old hash."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        before = stored(ckube)
        consumer = make_consumer()
        request = make_request()
        state = consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        assert state.phase == "pending"
        assert state.reason.startswith("restarted at 2025-06-01T12:00:00Z")
        after = stored(ckube)
        template_annotations = after["spec"]["template"]["metadata"]["annotations"]
        assert template_annotations[RESTARTED_AT_ANNOTATION] == "2025-06-01T12:00:00Z"
        assert PUSHED_ANNOTATION not in template_annotations
        assert records(ckube) == {
            "agent": {
                "fingerprint": FP_A,
                "template": template_hash(before["spec"]["template"]),
                "at": "2025-06-01T11:59:00Z",
            }
        }
        assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
        [patch] = patches(ckube)
        sent = json.loads(patch.body)
        assert sent["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    @pytest.mark.parametrize(
        ("kind", "replicas"), [("Deployment", 3), ("DaemonSet", 3), ("StatefulSet", 3)]
    )
    def test_pending_then_switched_once_the_rollout_completes(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
        kind: str,
        replicas: int,
    ) -> None:
        """After the restart each kind is pending with progress, then switched once rolled out."""
        ckube.add_workload(kind, NAMESPACE, NAME, replicas=replicas)
        consumer = make_consumer(kind)
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "pending"
        assert state.reason.startswith("rollout in progress: ")
        kube_clock.advance(ROLLOUT / 2)
        assert only(consumer.observe(request, frozenset())).phase == "pending"
        kube_clock.advance(ROLLOUT / 2)
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "switched"
        assert state.reason.startswith("rollout complete: 3/3 updated and ")

    def test_deployment_progress_is_reported(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A Deployment mid-rollout reports how many replicas are updated."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        kube_clock.advance(ROLLOUT * 0.4)
        state = only(consumer.observe(request, frozenset()))
        assert state.reason == "rollout in progress: 1/3 updated"

    def test_stalled_deployment_fails_with_progress_deadline_exceeded(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A Deployment whose rollout exceeded its progress deadline is failed."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        ckube.stall("Deployment", NAMESPACE, NAME)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "failed"
        assert "ProgressDeadlineExceeded" in state.reason

    def test_stalled_daemonset_stays_pending_forever(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A DaemonSet has no progress deadline: a stalled rollout is pending, never switched."""
        ckube.add_workload("DaemonSet", NAMESPACE, NAME, replicas=4)
        ckube.stall("DaemonSet", NAMESPACE, NAME)
        consumer = make_consumer("DaemonSet")
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        for _ in range(3):
            kube_clock.advance(ROLLOUT * 10)
            state = only(consumer.observe(request, frozenset()))
            assert state.phase == "pending"
            assert state.reason == "rollout in progress: 2/4 updated"

    def test_paused_deployment_is_refused_without_a_patch(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Triggering a paused Deployment returns failed and sends no PATCH."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        consumer = make_consumer()
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        ckube.pause(NAMESPACE, NAME)
        result = consumer.trigger(state, [request])
        assert result.phase == "failed"
        assert result.reason == f"Deployment {NAME}: {PAUSED_REFUSAL}"
        assert patches(ckube) == []

    def test_paused_after_restart_fails_the_rollout(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A Deployment paused mid-rollout is failed: it will not finish by itself."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        ckube.pause(NAMESPACE, NAME)
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "failed"
        assert "paused" in state.reason

    def test_two_requests_are_recorded_in_one_patch_with_one_restart(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Coalesced keys are recorded together by a single PATCH that restarts once."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        generation = stored(ckube)["metadata"]["generation"]
        first = make_consumer()
        second = make_consumer()
        agent, otel = make_request("agent", FP_A), make_request("otel", FP_B)
        state_a = only(first.observe(agent, frozenset()))
        state_b = only(second.observe(otel, frozenset()))
        assert state_a.workload == state_b.workload
        first.trigger(state_a, [agent, otel])
        assert len(patches(ckube)) == 1
        assert set(records(ckube)) == {"agent", "otel"}
        assert stored(ckube)["metadata"]["generation"] == generation + 1
        assert only(second.observe(otel, frozenset())).phase == "pending"
        kube_clock.advance(ROLLOUT)
        assert only(first.observe(agent, frozenset())).switched
        assert only(second.observe(otel, frozenset())).switched

    def test_other_keys_entries_are_preserved(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A trigger for one key keeps the record entries of other keys."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        agent, otel = make_request("agent", FP_A), make_request("otel", FP_B)
        consumer.trigger(only(consumer.observe(agent, frozenset())), [agent])
        kept = records(ckube)["agent"]
        kube_clock.advance(ROLLOUT)
        consumer.trigger(only(consumer.observe(otel, frozenset())), [otel])
        assert records(ckube)["agent"] == kept
        assert records(ckube)["otel"]["fingerprint"] == FP_B

    def test_switched_is_stable_and_observing_again_writes_nothing(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Once switched, further observations stay switched and send no write."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        kube_clock.advance(ROLLOUT)
        writes = len(ckube.mutating_requests())
        for _ in range(2):
            kube_clock.advance(3600)
            assert only(make_consumer().observe(request, frozenset())).switched
        assert len(ckube.mutating_requests()) == writes

    def test_crash_between_record_and_restart_needs_a_trigger_again(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A record for this value with an unchanged template means the restart is still due."""
        obj = ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        request = make_request()
        entry = {
            "fingerprint": FP_A,
            "template": template_hash(obj["spec"]["template"]),
            "at": "2025-06-01T11:59:00Z",
        }
        obj["metadata"].setdefault("annotations", {})[PUSHED_ANNOTATION] = json.dumps(
            {"agent": entry}
        )
        ckube.apply(obj)
        consumer = make_consumer()
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "needs-trigger"
        consumer.trigger(state, [request])
        template = stored(ckube)["spec"]["template"]
        assert RESTARTED_AT_ANNOTATION in template["metadata"]["annotations"]

    def test_crash_after_restart_does_not_restart_again(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A new process finds the restart done: pending, never needs-trigger, and a stray
        trigger writes nothing."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        request = make_request()
        first = make_consumer()
        first.trigger(only(first.observe(request, frozenset())), [request])
        restarted = stored(ckube)
        again = make_consumer()
        state = only(again.observe(request, frozenset()))
        assert state.phase == "pending"
        result = again.trigger(state, [request])
        assert result.phase == "pending"
        assert len(patches(ckube)) == 1
        assert stored(ckube)["spec"] == restarted["spec"]

    def test_conflict_is_retried_with_a_fresh_read(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 409 from a concurrent writer is answered by reading again and patching again."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        ckube.conflict_next_update("deployments", NAMESPACE, NAME, count=2)
        assert consumer.trigger(state, [request]).phase == "pending"
        assert [p.status for p in patches(ckube)] == [409, 409, 200]
        assert records(ckube)["agent"]["fingerprint"] == FP_A

    def test_persistent_conflict_is_target_conflict(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Losing every attempt to concurrent writers raises ConsumerConflict naming it."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        consumer = make_consumer(conflict_attempts=3)
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        ckube.conflict_next_update("deployments", NAMESPACE, NAME, count=10)
        with pytest.raises(ConsumerConflict, match=f"{NAMESPACE}/{NAME} kept changing") as caught:
            consumer.trigger(state, [request])
        assert caught.value.retryable
        assert len(patches(ckube)) == 3

    def test_restart_in_the_same_second_still_changes_the_template(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A restartedAt equal to the current one is moved on a second, so pods do roll."""
        ckube.add_workload(
            "Deployment",
            NAMESPACE,
            NAME,
            template_annotations={RESTARTED_AT_ANNOTATION: "2025-06-01T12:00:00Z"},
        )
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        annotations = stored(ckube)["spec"]["template"]["metadata"]["annotations"]
        assert annotations[RESTARTED_AT_ANNOTATION] == "2025-06-01T12:00:01Z"

    def test_workload_deleted_before_the_trigger_fails(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A workload gone by trigger time is a failed state, not an exception."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        consumer = make_consumer()
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        ckube.delete("deployments", NAMESPACE, NAME)
        result = consumer.trigger(state, [request])
        assert result.phase == "failed"
        assert "not found" in result.reason

    def test_state_of_another_consumer_is_refused(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A state naming a workload this consumer does not cover raises ConsumerInvalid."""
        foreign = SwitchState(
            id="kubernetes-workload:default/other/Deployment/x",
            phase="needs-trigger",
            reason="",
            workload="kubernetes-workload:default/other/Deployment/x",
        )
        with pytest.raises(ConsumerInvalid, match="not a workload of this consumer"):
            make_consumer().trigger(foreign, [make_request()])
        assert ckube.log == []


class TestWait:
    """Waiting for Reloader/VSO/ESO to restart the workload."""

    def test_trigger_records_only_and_rolls_nothing(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """In wait mode the trigger writes the record and leaves the template alone."""
        before = ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer(action="wait")
        request = make_request()
        state = consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        assert state.phase == "pending"
        after = stored(ckube)
        assert after["spec"] == before["spec"]
        revision = "deployment.kubernetes.io/revision"
        assert (
            after["metadata"]["annotations"][revision]
            == before["metadata"]["annotations"][revision]
        )
        assert ckube.rollout_complete("Deployment", NAMESPACE, NAME)
        assert records(ckube)["agent"]["template"] == template_hash(before["spec"]["template"])
        [patch] = patches(ckube)
        assert "spec" not in json.loads(patch.body)

    def test_pending_until_someone_else_restarts_it(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        ckubeconfig: Path,
        kubectl: Kubectl,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Pending until an external restart (kubectl, as Reloader does it), switched after it
        rolled out."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer(action="wait")
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        kube_clock.advance(ROLLOUT * 5)
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "pending"
        assert "waiting for Reloader/VSO/ESO" in state.reason
        done = kubectl(
            "rollout", "restart", f"deployment/{NAME}", "-n", NAMESPACE, kubeconfig=ckubeconfig
        )
        assert done.returncode == 0, done.stderr
        assert only(consumer.observe(request, frozenset())).phase == "pending"
        kube_clock.advance(ROLLOUT)
        state = only(consumer.observe(request, frozenset()))
        assert state.phase == "switched"

    def test_in_process_template_change_counts_as_the_restart(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Any template change after the record (VSO's restart here) is judged by its rollout."""
        ckube.add_workload("StatefulSet", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer("StatefulSet", action="wait")
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        obj = stored(ckube, "StatefulSet")
        obj["spec"]["template"]["metadata"].setdefault("annotations", {})[
            "vso.secrets.hashicorp.com/restartedAt"
        ] = "2025-06-01T12:00:05Z"
        ckube.apply(obj)
        assert only(consumer.observe(request, frozenset())).phase == "pending"
        kube_clock.advance(ROLLOUT)
        assert only(consumer.observe(request, frozenset())).switched

    def test_second_trigger_keeps_the_first_record(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A repeated wait trigger for a recorded value writes nothing."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        consumer = make_consumer(action="wait")
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        consumer.trigger(state, [request])
        consumer.trigger(state, [request])
        assert len(patches(ckube)) == 1


class TestErrors:
    """Failures of the API are mapped to the rotator's error tree."""

    def test_forbidden_patch_is_target_forbidden(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 403 on the PATCH raises ConsumerForbidden naming the workload and the RBAC message."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        ckube.forbid("patch", "deployments", NAMESPACE)
        consumer = make_consumer()
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        with pytest.raises(ConsumerForbidden) as caught:
            consumer.trigger(state, [request])
        message = str(caught.value)
        assert message.startswith(f"kubernetes-workload:default/{NAMESPACE}/Deployment/{NAME}:")
        assert "forbidden (403) to patch deployments" in message
        assert 'cannot patch resource "deployments"' in message

    def test_forbidden_list_is_target_forbidden(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 403 on the selector's LIST raises ConsumerForbidden naming the consumer."""
        ckube.forbid("list", "daemonsets")
        consumer = make_consumer("DaemonSet", selector={"app": "x"})
        with pytest.raises(ConsumerForbidden, match=re.escape(consumer.id)):
            consumer.observe(make_request(), frozenset())

    def test_server_error_is_target_unavailable(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 500 on the GET raises ConsumerUnavailable, which is retryable."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        ckube.fail_next("GET", path_of("Deployment"), 500)
        with pytest.raises(ConsumerUnavailable, match="API server answered 500") as caught:
            make_consumer().observe(make_request(), frozenset())
        assert caught.value.retryable

    def test_rate_limit_is_target_unavailable(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 429 on the PATCH raises ConsumerUnavailable, which is retryable."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        consumer = make_consumer()
        request = make_request()
        state = only(consumer.observe(request, frozenset()))
        ckube.fail_next("PATCH", path_of("Deployment"), 429)
        with pytest.raises(ConsumerUnavailable, match="API server answered 429") as caught:
            consumer.trigger(state, [request])
        assert caught.value.retryable

    def test_error_body_is_never_quoted(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """Only the Status message reaches the error; the rest of the body does not."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "etcdserver: request timed out",
            "reason": "InternalError",
            "details": {"causes": [{"message": "leaked-body-content-0001"}]},
            "code": 503,
        }
        ckube.fail_next("GET", path_of("Deployment"), 503, body=body)
        with pytest.raises(ConsumerUnavailable) as caught:
            make_consumer().observe(make_request(), frozenset())
        assert "etcdserver: request timed out" in str(caught.value)
        assert "leaked-body-content-0001" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__

    def test_unanswered_call_times_out(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        tmp_path: Path,
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A black-holed API server fails the call after the request timeout."""
        slow = make_kube()
        slow.add_workload("Deployment", NAMESPACE, NAME)
        slow.add_latency("GET", path_of("Deployment"), 2.0, count=3)
        config = slow.write_kubeconfig(tmp_path / "slow")
        with KubeClients(config, request_timeout=0.2) as clients:
            consumer = KubernetesWorkloadConsumer(
                clients, namespace=NAMESPACE, kind="Deployment", name=NAME
            )
            with pytest.raises(ConsumerUnavailable, match=r"no answer within 0\.2s"):
                consumer.observe(make_request(), frozenset())

    def test_unreachable_api_server_is_target_unavailable(
        self,
        tmp_path: Path,
        make_kube: Callable[..., KubernetesEmulator],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A refused connection raises ConsumerUnavailable saying so."""
        gone = make_kube()
        config = gone.write_kubeconfig(tmp_path / "gone")
        gone.stop()
        with KubeClients(config, request_timeout=1.0) as clients:
            consumer = KubernetesWorkloadConsumer(
                clients, namespace=NAMESPACE, kind="Deployment", name=NAME
            )
            with pytest.raises(ConsumerUnavailable, match="cannot connect to the API server"):
                consumer.observe(make_request(), frozenset())

    def test_non_json_answer_is_target_invalid(
        self,
        ckube: KubernetesEmulator,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """A 200 whose body is not a JSON object raises ConsumerInvalid."""
        ckube.add_workload("Deployment", NAMESPACE, NAME)
        ckube.fail_next("GET", path_of("Deployment"), 200, body=["not", "an", "object"])
        with pytest.raises(ConsumerInvalid, match="not a JSON object"):
            make_consumer().observe(make_request(), frozenset())


class TestMapError:
    """The one mapping function leaves no client error unmapped."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (0, ConsumerUnavailable),
            (400, ConsumerInvalid),
            (401, ConsumerForbidden),
            (403, ConsumerForbidden),
            (404, ConsumerInvalid),
            (409, ConsumerConflict),
            (422, ConsumerInvalid),
            (429, ConsumerUnavailable),
            (500, ConsumerUnavailable),
            (503, ConsumerUnavailable),
        ],
    )
    def test_every_status_is_mapped(self, status: int, expected: type[Exception]) -> None:
        """Each HTTP status becomes the documented class, naming the workload."""
        mapped = map_error(
            ApiException(status=status, reason="x"),
            where="kubernetes-workload:default/ns/Deployment/d",
            verb="get",
            resource="deployments",
            namespace="ns",
            timeout=1.0,
        )
        assert type(mapped) is expected
        assert str(mapped).startswith("kubernetes-workload:default/ns/Deployment/d: ")

    def test_retry_after_becomes_the_delay(self) -> None:
        """A 429's Retry-After header is passed on as the error's delay."""
        exc = ApiException(status=429, reason="Too Many Requests")
        exc.headers = {"Retry-After": "7"}
        mapped = map_error(
            exc, where="w", verb="get", resource="deployments", namespace="ns", timeout=1.0
        )
        assert isinstance(mapped, ConsumerUnavailable)
        assert mapped.delay == 7.0

    @pytest.mark.parametrize(
        "exc",
        [
            urllib3.exceptions.ProtocolError("reset"),
            urllib3.exceptions.ReadTimeoutError(None, "/x", "timed out"),  # type: ignore[arg-type]
            ConfigException("token refresh failed"),
            RuntimeError("other"),
        ],
        ids=["protocol", "timeout", "credentials", "other"],
    )
    def test_lower_errors_are_mapped(self, exc: BaseException) -> None:
        """Transport, credential and unexpected errors become Consumer errors."""
        mapped = map_error(
            exc, where="w", verb="get", resource="deployments", namespace="ns", timeout=1.0
        )
        expected = ConsumerForbidden if isinstance(exc, ConfigException) else ConsumerUnavailable
        assert type(mapped) is expected


class TestKubectlAgreement:
    """Our verdict agrees with the real ``kubectl rollout status``."""

    def test_kubectl_rollout_status_agrees(
        self,
        ckube: KubernetesEmulator,
        kube_clock: KubeClock,
        ckubeconfig: Path,
        kubectl: Kubectl,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """kubectl says waiting while we say pending, and successfully rolled out when switched."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])

        def kubectl_says() -> str:
            done = kubectl(
                "rollout",
                "status",
                f"deployment/{NAME}",
                "-n",
                NAMESPACE,
                "--watch=false",
                kubeconfig=ckubeconfig,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        kube_clock.advance(ROLLOUT * 0.4)
        assert only(consumer.observe(request, frozenset())).phase == "pending"
        assert "1 out of 3 new replicas have been updated" in kubectl_says()
        kube_clock.advance(ROLLOUT)
        assert only(consumer.observe(request, frozenset())).switched
        assert "successfully rolled out" in kubectl_says()

    def test_kubectl_agrees_on_a_stalled_deployment(
        self,
        ckube: KubernetesEmulator,
        ckubeconfig: Path,
        kubectl: Kubectl,
        make_consumer: Callable[..., KubernetesWorkloadConsumer],
        make_request: Callable[..., SwitchRequest],
    ) -> None:
        """kubectl fails on the exceeded progress deadline where we report failed."""
        ckube.add_workload("Deployment", NAMESPACE, NAME, replicas=3)
        ckube.stall("Deployment", NAMESPACE, NAME)
        consumer = make_consumer()
        request = make_request()
        consumer.trigger(only(consumer.observe(request, frozenset())), [request])
        assert only(consumer.observe(request, frozenset())).failed
        done = kubectl(
            "rollout",
            "status",
            f"deployment/{NAME}",
            "-n",
            NAMESPACE,
            "--watch=false",
            kubeconfig=ckubeconfig,
        )
        assert done.returncode != 0
        assert "exceeded its progress deadline" in done.stderr
