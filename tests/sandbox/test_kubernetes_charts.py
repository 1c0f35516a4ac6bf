"""Agent installations seeded the way their Helm charts render them, and the sandbox's seeding."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from rotator_sandbox.environment import EXAMPLE_KEY, EXAMPLE_NAMESPACE, Sandbox
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_charts import seed_agent_chart, seed_k8s_agent_chart
from tests.plugins.kubernetes import API_TIMEOUT, KubeClock

T = API_TIMEOUT
RELEASE = "sts"
NAMESPACE = "suse-observability"
WORKLOADS = {
    ("DaemonSet", "sts-node-agent"),
    ("DaemonSet", "sts-logs-agent"),
    ("Deployment", "sts-cluster-agent"),
    ("Deployment", "sts-checks-agent"),
    ("Deployment", "sts-rbac-agent"),
}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template."""
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found


def key_refs(workload: dict[str, Any], variable: str) -> set[tuple[str, str]]:
    """(Secret, key) of every ``env`` entry named ``variable`` read through secretKeyRef."""
    refs: set[tuple[str, str]] = set()
    for container in containers(workload):
        for entry in container.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if entry["name"] == variable and ref:
                refs.add((ref["name"], ref["key"]))
    return refs


def env_from_secrets(workload: dict[str, Any]) -> list[str]:
    """The Secrets a workload loads whole through ``envFrom[].secretRef``."""
    return [
        source["secretRef"]["name"]
        for container in containers(workload)
        for source in container.get("envFrom") or []
        if "secretRef" in source
    ]


def by_name(installed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The installed workloads by name."""
    return {w["metadata"]["name"]: w for w in installed["workloads"]}


class TestSuseObservabilityAgentChart:
    """seed_agent_chart: suse-observability-agent 1.5.x with default values."""

    def test_renders_the_helm_labelled_secret(self, kube: KubernetesEmulator) -> None:
        """<release>-secrets holds STS_API_KEY and a random 32-character cluster auth token."""
        seed_agent_chart(kube, RELEASE, NAMESPACE, api_key="from-values")
        data = kube.secret_data(NAMESPACE, "sts-secrets")
        assert data["STS_API_KEY"] == "from-values"
        assert re.fullmatch(r"[A-Za-z0-9]{32}", data["STS_CLUSTER_AGENT_AUTH_TOKEN"])
        secret = kube.get("secrets", NAMESPACE, "sts-secrets")
        assert secret is not None
        assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert secret["metadata"]["labels"]["helm.sh/chart"].startswith("suse-observability-agent-")
        assert secret["metadata"]["annotations"] == {
            "meta.helm.sh/release-name": RELEASE,
            "meta.helm.sh/release-namespace": NAMESPACE,
        }

    def test_installs_the_five_default_workloads(self, kube: KubernetesEmulator) -> None:
        """Two DaemonSets and three Deployments, all Helm-annotated and release-labelled."""
        installed = seed_agent_chart(kube, RELEASE, NAMESPACE)
        assert {(w["kind"], w["metadata"]["name"]) for w in installed["workloads"]} == WORKLOADS
        for workload in installed["workloads"]:
            meta = workload["metadata"]
            assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
            assert meta["annotations"]["meta.helm.sh/release-namespace"] == NAMESPACE
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE

    def test_default_values_read_the_chart_secret(self, kube: KubernetesEmulator) -> None:
        """Without fromSecret every agent reads STS_API_KEY from <release>-secrets."""
        installed = seed_agent_chart(kube, RELEASE, NAMESPACE)
        assert installed["api_key_secret"] == "sts-secrets"
        workloads = by_name(installed)
        for name in ("sts-node-agent", "sts-logs-agent", "sts-cluster-agent", "sts-checks-agent"):
            assert key_refs(workloads[name], "STS_API_KEY") == {("sts-secrets", "STS_API_KEY")}
        assert env_from_secrets(workloads["sts-rbac-agent"]) == ["sts-secrets"]

    def test_from_secret_moves_the_api_key_but_not_the_auth_token(
        self, kube: KubernetesEmulator
    ) -> None:
        """With fromSecret the agents read the key there; <release>-secrets is still rendered
        and still the source of STS_CLUSTER_AGENT_AUTH_TOKEN; fromSecret is not created."""
        installed = seed_agent_chart(kube, RELEASE, NAMESPACE, from_secret="sts-rotated-api-key")
        workloads = by_name(installed)
        for name in ("sts-node-agent", "sts-logs-agent", "sts-cluster-agent", "sts-checks-agent"):
            assert key_refs(workloads[name], "STS_API_KEY") == {
                ("sts-rotated-api-key", "STS_API_KEY")
            }
        assert env_from_secrets(workloads["sts-rbac-agent"]) == ["sts-rotated-api-key"]
        for name in ("sts-node-agent", "sts-cluster-agent", "sts-checks-agent"):
            assert key_refs(workloads[name], "STS_CLUSTER_AGENT_AUTH_TOKEN") == {
                ("sts-secrets", "STS_CLUSTER_AGENT_AUTH_TOKEN")
            }
        assert kube.get("secrets", NAMESPACE, "sts-secrets") is not None
        assert kube.get("secrets", NAMESPACE, "sts-rotated-api-key") is None

    def test_node_agent_reads_the_key_in_both_containers(self, kube: KubernetesEmulator) -> None:
        """The node-agent DaemonSet's node-agent and process-agent containers both read it."""
        installed = seed_agent_chart(kube, RELEASE, NAMESPACE)
        node_agent = by_name(installed)["sts-node-agent"]
        names = [c["name"] for c in containers(node_agent)]
        assert names == ["node-agent", "process-agent"]
        for container in containers(node_agent):
            refs = [e for e in container["env"] if e["name"] == "STS_API_KEY"]
            assert refs[0]["valueFrom"]["secretKeyRef"]["name"] == "sts-secrets"

    def test_pod_templates_carry_the_secret_checksum(self, kube: KubernetesEmulator) -> None:
        """The chart's pods are annotated checksum/secret; the rbac-agent subchart's revision."""
        workloads = by_name(seed_agent_chart(kube, RELEASE, NAMESPACE))
        for name, workload in workloads.items():
            annotations = workload["spec"]["template"]["metadata"]["annotations"]
            if name == "sts-rbac-agent":
                assert annotations == {"revision": "1"}
            else:
                assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])

    def test_workloads_start_rolled_out_with_their_rollout_seconds(
        self, make_kube: Callable[..., KubernetesEmulator], kube_clock: KubeClock
    ) -> None:
        """rollout_seconds applies to every workload; all start fully rolled out."""
        emulator = make_kube(clock=kube_clock)
        installed = seed_agent_chart(emulator, RELEASE, NAMESPACE, rollout_seconds=30)
        for workload in installed["workloads"]:
            kind, name = workload["kind"], workload["metadata"]["name"]
            assert emulator.rollout_complete(kind, NAMESPACE, name)
            assert emulator.rollout_seconds_of(kind, NAMESPACE, name) == 30

    def test_the_python_client_reads_every_object(
        self, kube: KubernetesEmulator, kube_api: client.ApiClient
    ) -> None:
        """The official client deserialises the seeded DaemonSets, Deployments and Secret."""
        seed_agent_chart(kube, RELEASE, NAMESPACE, from_secret="sts-rotated-api-key")
        apps = client.AppsV1Api(kube_api)
        daemonsets = apps.list_namespaced_daemon_set(NAMESPACE, _request_timeout=T).items
        deployments = apps.list_namespaced_deployment(NAMESPACE, _request_timeout=T).items
        assert len(daemonsets) + len(deployments) == 5
        secret = client.CoreV1Api(kube_api).read_namespaced_secret(
            "sts-secrets", NAMESPACE, _request_timeout=T
        )
        assert secret.type == "Opaque"


class TestStackstateK8sAgentChart:
    """seed_k8s_agent_chart: the older stackstate-k8s-agent chart."""

    def test_default_values_render_the_fullname_secret(self, kube: KubernetesEmulator) -> None:
        """Secret <release>-stackstate-k8s-agent holds sts-api-key; the agents read it."""
        installed = seed_k8s_agent_chart(kube, RELEASE, NAMESPACE, api_key="v")
        assert installed["api_key_secret"] == "sts-stackstate-k8s-agent"
        assert installed["api_key_key"] == "sts-api-key"
        assert kube.secret_data(NAMESPACE, "sts-stackstate-k8s-agent")["sts-api-key"] == "v"
        for workload in installed["workloads"]:
            assert key_refs(workload, "STS_API_KEY") == {
                ("sts-stackstate-k8s-agent", "sts-api-key")
            }
        assert {w["metadata"]["name"] for w in installed["workloads"]} == {
            "sts-node-agent",
            "sts-logs-agent",
            "sts-cluster-agent",
            "sts-checks-agent",
        }

    def test_release_containing_the_chart_name_is_the_fullname(
        self, kube: KubernetesEmulator
    ) -> None:
        """A release named stackstate-k8s-agent gives a Secret of that name, not a doubled one."""
        installed = seed_k8s_agent_chart(kube, "stackstate-k8s-agent", NAMESPACE)
        assert installed["api_key_secret"] == "stackstate-k8s-agent"

    def test_manage_own_secrets_renders_nothing_and_reads_the_custom_secret(
        self, kube: KubernetesEmulator
    ) -> None:
        """With manageOwnSecrets no Secret is rendered; agents read customSecretName/Key."""
        installed = seed_k8s_agent_chart(
            kube,
            RELEASE,
            NAMESPACE,
            manage_own_secrets=True,
            custom_secret_name="sts-rotated-api-key",
            custom_api_key_secret_key="api-key",
        )
        assert installed["secrets"] == []
        assert kube.objects("secrets", NAMESPACE) == []
        for workload in installed["workloads"]:
            assert key_refs(workload, "STS_API_KEY") == {("sts-rotated-api-key", "api-key")}

    def test_manage_own_secrets_needs_a_secret_name(self, kube: KubernetesEmulator) -> None:
        """manage_own_secrets without custom_secret_name is a ValueError."""
        with pytest.raises(ValueError, match="custom_secret_name"):
            seed_k8s_agent_chart(kube, RELEASE, NAMESPACE, manage_own_secrets=True)


class TestSandboxSeeding:
    """What ``rotator sandbox`` / ``rotator demo`` start with."""

    def test_sandbox_agents_read_the_rotated_secret_and_roll_out_slowly(self) -> None:
        """The chart is pointed at <release>-rotated-api-key; rollouts take a few seconds."""
        with Sandbox(services=("kubernetes",)) as sandbox:
            kube = sandbox.kubernetes
            assert kube is not None
            assert kube.rollout_seconds >= 1
            workloads = kube.objects("deployments", EXAMPLE_NAMESPACE) + kube.objects(
                "daemonsets", EXAMPLE_NAMESPACE
            )
            assert len(workloads) == 5
            rotated = f"{EXAMPLE_KEY}-rotated-api-key"
            for workload in workloads:
                refs = key_refs(workload, "STS_API_KEY") | {
                    (name, "STS_API_KEY") for name in env_from_secrets(workload)
                }
                assert refs == {(rotated, "STS_API_KEY")}
                kind = workload["kind"]
                assert kube.rollout_complete(kind, EXAMPLE_NAMESPACE, workload["metadata"]["name"])
            assert kube.get("secrets", EXAMPLE_NAMESPACE, f"{EXAMPLE_KEY}-secrets") is not None
