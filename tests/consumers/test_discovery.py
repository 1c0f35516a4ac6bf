"""Tests for rotator.consumers.discovery: which pod templates read a Secret's data key, and the
discovered consumer against the Kubernetes emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rotator.clients.kubernetes import KubeClients
from rotator.consumers.base import Consumer, SwitchRequest
from rotator.consumers.discovery import DiscoveredWorkloads, template_reads
from rotator_sandbox.kubernetes import KubernetesEmulator

NS = "agents"


def template(containers: list[dict[str, Any]], volumes: list[dict[str, Any]] | None = None) -> Any:
    """A pod template with these containers (each given an image) and volumes."""
    spec: dict[str, Any] = {"containers": [{"image": "agent:1", **c} for c in containers]}
    if volumes is not None:
        spec["volumes"] = volumes
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def env_ref(secret: str, key: str) -> dict[str, Any]:
    """A container reading ``key`` of ``secret`` into env K through secretKeyRef."""
    ref = {"name": secret, "key": key}
    return {"name": "c", "env": [{"name": "K", "valueFrom": {"secretKeyRef": ref}}]}


class TestTemplateReads:
    """template_reads knows every way a pod reads a Secret's data key."""

    def test_env_secret_key_ref_of_the_key(self) -> None:
        """env[].valueFrom.secretKeyRef naming the Secret and the key reads it."""
        assert template_reads(template([env_ref("s", "API")]), "s", "API") == [
            "container c: env K (secretKeyRef)"
        ]

    def test_secret_key_ref_of_another_key_or_secret_does_not(self) -> None:
        """Another data key, or the same key of another Secret, is not a read."""
        assert template_reads(template([env_ref("s", "OTHER")]), "s", "API") == []
        assert template_reads(template([env_ref("t", "API")]), "s", "API") == []

    def test_env_from_reads_every_key(self) -> None:
        """envFrom[].secretRef takes the whole Secret (the agent chart's rbac-agent)."""
        container = {"name": "rbac", "envFrom": [{"secretRef": {"name": "s"}}]}
        assert template_reads(template([container]), "s", "API") == [
            "container rbac: envFrom secretRef"
        ]

    def test_init_containers_count(self) -> None:
        """An init container reading the key is a reader too."""
        spec = template([{"name": "main"}])
        spec["spec"]["initContainers"] = [{"image": "init:1", **env_ref("s", "API")}]
        assert template_reads(spec, "s", "API") == ["container c: env K (secretKeyRef)"]

    @pytest.mark.parametrize(
        ("items", "reads"),
        [
            (None, True),
            ([{"key": "API", "path": "key"}], True),
            ([{"key": "X", "path": "x"}], False),
        ],
    )
    def test_secret_volume(self, items: list[dict[str, str]] | None, reads: bool) -> None:
        """A secret volume reads the key unless its items leave it out."""
        volume: dict[str, Any] = {"name": "v", "secret": {"secretName": "s"}}
        if items is not None:
            volume["secret"]["items"] = items
        found = template_reads(template([{"name": "c"}], [volume]), "s", "API")
        assert found == (["volume v (secret)"] if reads else [])

    def test_projected_volume(self) -> None:
        """A projected volume with a secret source of the Secret reads the key."""
        volume = {
            "name": "p",
            "projected": {"sources": [{"configMap": {"name": "s"}}, {"secret": {"name": "s"}}]},
        }
        assert template_reads(template([{"name": "c"}], [volume]), "s", "API") == [
            "volume p (projected secret)"
        ]

    def test_garbage_is_not_a_read(self) -> None:
        """Malformed templates read nothing instead of raising."""
        assert template_reads(None, "s", "API") == []
        assert template_reads({"spec": {"containers": "x", "volumes": [1]}}, "s", "API") == []


def seed(kube: KubernetesEmulator, kind: str, name: str, tpl: Any) -> None:
    """A workload ``name`` with pod template ``tpl`` (rolled out)."""
    labels = {"app": name}
    tpl = {**tpl, "metadata": {"labels": labels}}
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": tpl}
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": spec,
        }
    )


@pytest.fixture
def clients(kube: KubernetesEmulator, kubeconfig: Path) -> Any:
    """Kubernetes clients of the emulator (context sandbox)."""
    found = KubeClients(kubeconfig, "sandbox")
    yield found
    found.close()


@pytest.fixture
def make(clients: KubeClients) -> Callable[..., DiscoveredWorkloads]:
    """A discovered consumer of Secret ``own``/``API`` in NS."""

    def build(**kwargs: Any) -> DiscoveredWorkloads:
        kwargs.setdefault("secret", "own")
        kwargs.setdefault("key", "API")
        return DiscoveredWorkloads(clients, namespace=NS, **kwargs)

    return build


class TestDiscoveredWorkloads:
    """DiscoveredWorkloads against the emulator: found afresh, judged like named workloads."""

    def test_satisfies_the_consumer_protocol(
        self, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """It is a Consumer."""
        assert isinstance(make(), Consumer)

    def test_finds_each_reader_of_each_kind(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """Deployments, DaemonSets and StatefulSets reading the key are found; others not."""
        seed(kube, "Deployment", "a", template([env_ref("own", "API")]))
        seed(
            kube,
            "DaemonSet",
            "b",
            template([{"name": "c", "envFrom": [{"secretRef": {"name": "own"}}]}]),
        )
        seed(
            kube,
            "StatefulSet",
            "c",
            template([{"name": "c"}], [{"name": "v", "secret": {"secretName": "own"}}]),
        )
        seed(kube, "Deployment", "unrelated", template([env_ref("other", "API")]))
        resolution = make().resolve()
        assert [r.id.rsplit("/", 2)[1:] for r in resolution.readers] == [
            ["Deployment", "a"],
            ["DaemonSet", "b"],
            ["StatefulSet", "c"],
        ]
        assert resolution.blocking == ()

    def test_no_reader_is_a_blocking_problem(
        self, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """An empty namespace blocks: never "all 0 consumers switched"."""
        resolution = make(migration_hint="Point the chart at it").resolve()
        assert resolution.readers == ()
        assert len(resolution.blocking) == 1
        assert "no Deployment, DaemonSet or StatefulSet" in resolution.blocking[0]
        assert "Point the chart at it" in resolution.blocking[0]

    def test_readers_of_a_legacy_secret_block(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """A workload still reading the chart's own Secret blocks the key and is named."""
        seed(kube, "Deployment", "new", template([env_ref("own", "API")]))
        seed(kube, "Deployment", "old", template([env_ref("chart", "API")]))
        resolution = make(legacy_secrets=["chart"]).resolve()
        assert any("Deployment old reads Secret chart" in p for p in resolution.blocking)
        assert resolution.other_secrets == ((None, NS, "chart"),)

    def test_paused_reader_holds_a_rotation_back(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """A paused Deployment among the readers is a before-create problem."""
        seed(kube, "Deployment", "a", template([env_ref("own", "API")]))
        kube.pause(NS, "a")
        resolution = make().resolve()
        assert resolution.blocking == ()
        assert any("paused" in p for p in resolution.before_create)

    def test_jobs_and_cronjobs_are_informational(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """A CronJob reading the key is listed but never restarted."""
        seed(kube, "Deployment", "a", template([env_ref("own", "API")]))
        job_template = template([env_ref("own", "API")])
        job_template["spec"]["restartPolicy"] = "OnFailure"
        kube.apply(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": NS},
                "spec": {
                    "schedule": "0 2 * * *",
                    "jobTemplate": {"spec": {"template": job_template}},
                },
            }
        )
        resolution = make().resolve()
        informational = [r for r in resolution.readers if not r.restarted]
        assert [r.id.rsplit("/", 2)[1:] for r in informational] == [["CronJob", "nightly"]]

    def test_forbidden_cronjob_listing_warns_and_does_not_block(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """Without list on batch/v1 the resolution warns; the workloads still count."""
        seed(kube, "Deployment", "a", template([env_ref("own", "API")]))
        kube.forbid("list", "cronjobs", NS)
        resolution = make().resolve()
        assert resolution.blocking == ()
        assert any("cronjobs" in w for w in resolution.warnings)

    def test_reader_is_restarted_then_switched_after_its_rollout(
        self, kube: KubernetesEmulator, make: Callable[..., DiscoveredWorkloads]
    ) -> None:
        """Observed, triggered and judged exactly like a named workload."""
        seed(kube, "Deployment", "a", template([env_ref("own", "API")]))
        consumer = make()
        consumer.resolve()
        request = SwitchRequest("agent", "fp-1", datetime.now(UTC))
        (state,) = consumer.observe(request, frozenset())
        assert state.phase == "needs-trigger"
        assert state.workload is not None
        assert state.workload.endswith("/Deployment/a")
        after = consumer.trigger(state, [request])
        assert after.phase == "pending"
        consumer.resolve()
        (state,) = consumer.observe(request, frozenset())
        assert state.phase == "switched"
