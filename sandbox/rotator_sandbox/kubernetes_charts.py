"""Agent installations seeded into the Kubernetes emulator the way their Helm charts render them.

:func:`seed_agent_chart` installs the current ``suse-observability-agent`` chart (1.5.x) with
default values, :func:`seed_k8s_agent_chart` the older ``stackstate-k8s-agent`` chart. Both follow
the templates in StackVista/helm-charts (``stable/suse-observability-agent/templates``:
``secret.yaml``, ``_helpers.tpl``, ``_container-agent.yaml``, ``_container-process-agent.yaml``,
``node-agent-daemonset.yaml``, ``logs-agent-daemonset.yaml``, ``cluster-agent-deployment.yaml``,
``checks-agent-deployment.yaml``, the ``kubernetes-rbac-agent`` subchart's ``deployment.yaml`` and
``_defines.tpl``; ``stable/stackstate-k8s-agent/templates`` for the older chart). What they show:

- ``suse-observability-agent``: ``secret.yaml`` is rendered unconditionally as
  ``<release>-secrets`` with ``STS_API_KEY`` (from ``stackstate.apiKey``, which is required even
  when the key comes from elsewhere) and ``STS_CLUSTER_AGENT_AUTH_TOKEN`` (a random 32-character
  token unless ``stackstate.cluster.authToken`` is given). ``global.apiKey.fromSecret`` (default
  ``{{ include "stackstate-k8s-agent.secret.internal.name" . }}`` = ``<release>-secrets``) names
  the Secret the containers read ``STS_API_KEY`` from through ``env[].valueFrom.secretKeyRef`` —
  node-agent (both its ``node-agent`` and ``process-agent`` containers), logs-agent,
  cluster-agent and checks-agent — while the rbac-agent subchart loads the whole Secret with
  ``envFrom[].secretRef``. Pointing ``fromSecret`` elsewhere does not stop ``<release>-secrets``
  from being rendered, and ``STS_CLUSTER_AGENT_AUTH_TOKEN`` is still read from it
  (``global.clusterAgentAuthToken.fromSecret`` has its own default). Pod templates carry
  ``checksum/secret`` (the sha256 of the rendered ``secret.yaml``), which changes only on
  ``helm upgrade``.
- ``stackstate-k8s-agent``: Secret ``<fullname>`` (``<release>-stackstate-k8s-agent`` unless the
  release name contains the chart name) with ``sts-api-key`` and ``sts-cluster-auth-token``,
  rendered only without ``stackstate.manageOwnSecrets``; with it, containers read
  ``stackstate.customSecretName`` / ``customApiKeySecretKey`` instead. No rbac-agent.

Every object gets what Helm itself adds on install: the label ``app.kubernetes.io/managed-by:
Helm`` and the annotations ``meta.helm.sh/release-name`` / ``meta.helm.sh/release-namespace``.
Volumes, probes and most plain environment variables are left out: nothing here reads them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rotator_sandbox.kubernetes import KubernetesEmulator

#: The chart names (``.Chart.Name``), also the ``app.kubernetes.io/name`` label value.
SUSE_AGENT_CHART = "suse-observability-agent"
K8S_AGENT_CHART = "stackstate-k8s-agent"
#: Chart versions the seeded labels name (``helm.sh/chart``) and their ``appVersion``.
SUSE_AGENT_CHART_VERSION = "1.5.0"
SUSE_AGENT_APP_VERSION = "3.0.0"
K8S_AGENT_CHART_VERSION = "1.0.45"
K8S_AGENT_APP_VERSION = "2.19.1"
#: The Secret key both charts' current containers read the key from (suse-observability-agent).
STS_API_KEY = "STS_API_KEY"
#: The older chart's Secret keys (``stackstate.customApiKeySecretKey`` defaults to the first).
K8S_AGENT_API_KEY_KEY = "sts-api-key"
K8S_AGENT_AUTH_TOKEN_KEY = "sts-cluster-auth-token"
#: The value of ``stackstate.apiKey`` when the caller gives none.
DEFAULT_API_KEY = "sandbox-helm-values-api-key"

_REGISTRY = "quay.io"
_AGENT_IMAGE = "stackstate/stackstate-k8s-agent:17713a0b"
_PROCESS_AGENT_IMAGE = "stackstate/stackstate-k8s-process-agent:4f8c0a0f"
_CLUSTER_AGENT_IMAGE = "stackstate/stackstate-k8s-cluster-agent:17713a0b"
_LOGS_AGENT_IMAGE = "stackstate/promtail:3.6.10-f51a4334-release-135"
_RBAC_AGENT_IMAGE = "stackstate/kubernetes-rbac-agent:e78c10a7-712-release"
_HELM_MANAGED = {"app.kubernetes.io/managed-by": "Helm"}


def _helm_annotations(release: str, namespace: str) -> dict[str, str]:
    return {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}


def _fullname(release: str, chart: str) -> str:
    """``stackstate-k8s-agent.fullname``: the release name alone when it contains the chart's."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:63].rstrip("-")


def _chart_labels(release: str, chart: str, version: str, app_version: str) -> dict[str, str]:
    """``stackstate-k8s-agent.labels``."""
    return {
        "app.kubernetes.io/name": chart,
        "helm.sh/chart": f"{chart}-{version}".replace("+", "_")[:63].rstrip("-"),
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/version": app_version,
        **_HELM_MANAGED,
    }


def _random_token() -> str:
    """``randAlphaNum 32``."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret_key_ref(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _field_ref(variable: str, path: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"fieldRef": {"fieldPath": path}}}


class _Chart:
    """What every object of one release shares: names, labels, annotations."""

    def __init__(
        self,
        release: str,
        namespace: str,
        *,
        chart: str,
        version: str,
        app_version: str,
        secret_checksum: str,
    ) -> None:
        self.release = release
        self.namespace = namespace
        self.chart = chart
        self.labels = _chart_labels(release, chart, version, app_version)
        self.annotations = _helm_annotations(release, namespace)
        self.secret_checksum = secret_checksum

    def selector(self, component: str) -> dict[str, str]:
        """The pod labels a component's selector matches."""
        return {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": self.release,
            "app.kubernetes.io/name": self.chart,
        }

    def workload(
        self,
        kind: str,
        component: str,
        containers: list[dict[str, Any]],
        *,
        pod_spec: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        template_annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A DaemonSet or Deployment named ``<release>-<component>``."""
        selector = self.selector(component)
        annotations = {"checksum/secret": self.secret_checksum, **(template_annotations or {})}
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {
                "name": f"{self.release}-{component}",
                "namespace": self.namespace,
                "labels": {**self.labels, "app.kubernetes.io/component": component},
                "annotations": dict(self.annotations),
            },
            "spec": {
                "selector": {"matchLabels": selector},
                **(spec or {}),
                "template": {
                    "metadata": {"labels": dict(selector), "annotations": annotations},
                    "spec": {**(pod_spec or {}), "containers": containers},
                },
            },
        }


def _secret_manifest(chart: _Chart, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": chart.namespace,
            "labels": dict(chart.labels),
            "annotations": dict(chart.annotations),
        },
        "type": "Opaque",
        "data": {key: _b64(value) for key, value in data.items()},
    }


def _checksum(document: dict[str, Any]) -> str:
    """Stands in for ``include (print $.Template.BasePath "/secret.yaml") . | sha256sum``."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _install(
    kube: KubernetesEmulator,
    namespace: str,
    manifests: list[dict[str, Any]],
    rollout_seconds: float | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply the manifests (``helm install --create-namespace``); returns (secrets, workloads)."""
    kube.create_namespace(namespace)
    stored_secrets: list[dict[str, Any]] = []
    workloads: list[dict[str, Any]] = []
    for manifest in manifests:
        stored = kube.apply(manifest)
        if manifest["kind"] == "Secret":
            stored_secrets.append(stored)
            continue
        if rollout_seconds is not None:
            kube.set_rollout_seconds(
                manifest["kind"], namespace, stored["metadata"]["name"], rollout_seconds
            )
        workloads.append(
            kube.get(manifest["kind"], namespace, stored["metadata"]["name"]) or stored
        )
    return stored_secrets, workloads


def seed_agent_chart(
    kube: KubernetesEmulator,
    release: str,
    namespace: str,
    *,
    api_key: str = DEFAULT_API_KEY,
    from_secret: str | None = None,
    rollout_seconds: float | None = None,
    cluster_auth_token: str | None = None,
    cluster_name: str = "sandbox",
) -> dict[str, Any]:
    """Install ``suse-observability-agent`` with default values (see the module docstring).

    ``api_key`` is ``stackstate.apiKey`` (written into ``<release>-secrets``); ``from_secret`` is
    ``global.apiKey.fromSecret`` — the Secret every agent reads ``STS_API_KEY`` from, which the
    chart does not create (``<release>-secrets`` when None). ``rollout_seconds`` is each
    workload's rollout duration (None: the emulator's). The workloads start rolled out.

    Returns ``{"release", "namespace", "chart", "api_key_secret", "api_key_key", "secrets",
    "workloads"}``: the Secret and key the agents read the API key from, and the stored objects.
    """
    internal = f"{release}-secrets"
    reads = from_secret or internal
    secret_data = {
        STS_API_KEY: api_key,
        "STS_CLUSTER_AGENT_AUTH_TOKEN": cluster_auth_token or _random_token(),
    }
    labels = _chart_labels(
        release, SUSE_AGENT_CHART, SUSE_AGENT_CHART_VERSION, SUSE_AGENT_APP_VERSION
    )
    rendered_secret = {"name": internal, "labels": labels, "data": secret_data}
    chart = _Chart(
        release,
        namespace,
        chart=SUSE_AGENT_CHART,
        version=SUSE_AGENT_CHART_VERSION,
        app_version=SUSE_AGENT_APP_VERSION,
        secret_checksum=_checksum(rendered_secret),
    )
    api_key_env = _secret_key_ref(STS_API_KEY, reads, STS_API_KEY)
    auth_token_env = _secret_key_ref(
        "STS_CLUSTER_AGENT_AUTH_TOKEN", internal, "STS_CLUSTER_AGENT_AUTH_TOKEN"
    )
    plain = [
        {"name": "STS_CLUSTER_NAME", "value": cluster_name},
        {"name": "STS_SKIP_VALIDATE_CLUSTERNAME", "value": "true"},
    ]
    daemon_update = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 100}}
    node_selector = {"kubernetes.io/os": "linux"}
    manifests = [
        _secret_manifest(chart, internal, secret_data),
        chart.workload(
            "DaemonSet",
            "node-agent",
            [
                {
                    "name": "node-agent",
                    "image": f"{_REGISTRY}/{_AGENT_IMAGE}",
                    "imagePullPolicy": "IfNotPresent",
                    "env": [
                        api_key_env,
                        _field_ref("STS_KUBERNETES_KUBELET_HOST", "status.hostIP"),
                        _field_ref("KUBERNETES_HOSTNAME", "spec.nodeName"),
                        {"name": "STS_CLUSTER_AGENT_ENABLED", "value": "true"},
                        {
                            "name": "STS_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME",
                            "value": f"{release}-cluster-agent",
                        },
                        auth_token_env,
                        *plain,
                    ],
                },
                {
                    "name": "process-agent",
                    "image": _PROCESS_AGENT_IMAGE,  # the template adds no registry here
                    "imagePullPolicy": "IfNotPresent",
                    "env": [api_key_env, *plain],
                },
            ],
            pod_spec={
                "dnsPolicy": "ClusterFirstWithHostNet",
                "hostNetwork": True,
                "hostPID": True,
                "serviceAccountName": f"{release}-node-agent",
                "nodeSelector": node_selector,
            },
            spec={"updateStrategy": daemon_update},
        ),
        chart.workload(
            "DaemonSet",
            "logs-agent",
            [
                {
                    "name": "logs-agent",
                    "image": f"{_REGISTRY}/{_LOGS_AGENT_IMAGE}",
                    "args": ["-config.expand-env=true", "-config.file=/etc/promtail/promtail.yaml"],
                    "imagePullPolicy": "IfNotPresent",
                    "env": [api_key_env, _field_ref("HOSTNAME", "spec.nodeName")],
                }
            ],
            pod_spec={"serviceAccountName": f"{release}-logs-agent"},
            spec={"updateStrategy": daemon_update},
            template_annotations={"checksum/override-configmap": _checksum({"logs": release})},
        ),
        chart.workload(
            "Deployment",
            "cluster-agent",
            [
                {
                    "name": "cluster-agent",
                    "image": f"{_REGISTRY}/{_CLUSTER_AGENT_IMAGE}",
                    "imagePullPolicy": "IfNotPresent",
                    "env": [
                        api_key_env,
                        auth_token_env,
                        _field_ref("KUBERNETES_HOSTNAME", "spec.nodeName"),
                        {"name": "STS_CLUSTER_CHECKS_ENABLED", "value": "true"},
                        *plain,
                    ],
                }
            ],
            pod_spec={
                "serviceAccountName": _fullname(release, SUSE_AGENT_CHART),
                "nodeSelector": node_selector,
            },
            spec={"replicas": 1, "strategy": {"type": "RollingUpdate"}},
        ),
        chart.workload(
            "Deployment",
            "checks-agent",
            [
                {
                    "name": SUSE_AGENT_CHART,  # the template names the container .Chart.Name
                    "image": f"{_REGISTRY}/{_AGENT_IMAGE}",
                    "imagePullPolicy": "IfNotPresent",
                    "env": [
                        api_key_env,
                        _field_ref("KUBERNETES_HOSTNAME", "spec.nodeName"),
                        {"name": "STS_CLUSTER_AGENT_ENABLED", "value": "true"},
                        auth_token_env,
                        {"name": "STS_EXTRA_CONFIG_PROVIDERS", "value": "clusterchecks"},
                        *plain,
                    ],
                }
            ],
            pod_spec={
                "serviceAccountName": f"{release}-checks-agent",
                "nodeSelector": node_selector,
            },
            spec={"replicas": 1, "strategy": {"type": "RollingUpdate"}},
        ),
        _rbac_agent(release, namespace, reads),
    ]
    stored_secrets, workloads = _install(kube, namespace, manifests, rollout_seconds)
    return {
        "release": release,
        "namespace": namespace,
        "chart": chart.labels["helm.sh/chart"],
        "api_key_secret": reads,
        "api_key_key": STS_API_KEY,
        "secrets": stored_secrets,
        "workloads": workloads,
    }


def _rbac_agent(release: str, namespace: str, api_key_secret: str) -> dict[str, Any]:
    """The ``kubernetes-rbac-agent`` subchart's Deployment: the whole Secret via ``envFrom``."""
    app = f"{release[:52].rstrip('-')}-rbac-agent"
    labels = {
        "app.kubernetes.io/component": "kubernetes-rbac-agent",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/name": app,
        "app": app,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": app,
            "namespace": namespace,
            "labels": {**labels, **_HELM_MANAGED},
            "annotations": _helm_annotations(release, namespace),
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"revision": "1"}},
                "spec": {
                    "serviceAccountName": app,
                    "containers": [
                        {
                            "name": "kubernetes-rbac-agent",
                            "image": f"{_REGISTRY}/{_RBAC_AGENT_IMAGE}",
                            "command": ["/usr/bin/kubernetes-rbac-agent"],
                            "args": ["start"],
                            "ports": [{"containerPort": 8080}],
                            "env": [
                                {"name": "STS_NAMESPACE", "value": namespace},
                                {"name": "STS_ROLE_TYPE", "value": "scope"},
                            ],
                            "envFrom": [
                                {"configMapRef": {"name": f"{release}-url"}},
                                {"configMapRef": {"name": f"{release}-cluster-name"}},
                                {"secretRef": {"name": api_key_secret}},
                            ],
                        }
                    ],
                },
            },
        },
    }


def seed_k8s_agent_chart(
    kube: KubernetesEmulator,
    release: str,
    namespace: str,
    *,
    api_key: str = DEFAULT_API_KEY,
    manage_own_secrets: bool = False,
    custom_secret_name: str | None = None,
    custom_api_key_secret_key: str = K8S_AGENT_API_KEY_KEY,
    rollout_seconds: float | None = None,
) -> dict[str, Any]:
    """Install the older ``stackstate-k8s-agent`` chart with default values.

    Without ``manage_own_secrets`` the chart renders Secret ``<fullname>`` (``sts-api-key``,
    ``sts-cluster-auth-token``) and the agents read it; with it (``stackstate.manageOwnSecrets``)
    nothing is rendered and they read ``custom_secret_name`` / ``custom_api_key_secret_key``.
    Same return shape as :func:`seed_agent_chart`.
    """
    fullname = _fullname(release, K8S_AGENT_CHART)
    if manage_own_secrets and not custom_secret_name:
        raise ValueError("manage_own_secrets needs custom_secret_name")
    # customClusterAuthTokenSecretKey keeps its default: the token key does not change.
    reads = custom_secret_name if manage_own_secrets and custom_secret_name else fullname
    key = custom_api_key_secret_key if manage_own_secrets else K8S_AGENT_API_KEY_KEY
    token_key = K8S_AGENT_AUTH_TOKEN_KEY
    secret_data = {K8S_AGENT_API_KEY_KEY: api_key, K8S_AGENT_AUTH_TOKEN_KEY: _random_token()}
    labels = _chart_labels(release, K8S_AGENT_CHART, K8S_AGENT_CHART_VERSION, K8S_AGENT_APP_VERSION)
    rendered = (
        {} if manage_own_secrets else {"name": fullname, "labels": labels, "data": secret_data}
    )
    chart = _Chart(
        release,
        namespace,
        chart=K8S_AGENT_CHART,
        version=K8S_AGENT_CHART_VERSION,
        app_version=K8S_AGENT_APP_VERSION,
        secret_checksum=_checksum(rendered),
    )
    api_key_env = _secret_key_ref(STS_API_KEY, reads, key)
    auth_token_env = _secret_key_ref("STS_CLUSTER_AGENT_AUTH_TOKEN", reads, token_key)
    manifests: list[dict[str, Any]] = []
    if not manage_own_secrets:
        manifests.append(_secret_manifest(chart, fullname, secret_data))
    manifests += [
        chart.workload(
            "DaemonSet",
            "node-agent",
            [
                {
                    "name": "node-agent",
                    "image": f"{_REGISTRY}/{_AGENT_IMAGE}",
                    "env": [api_key_env, auth_token_env],
                },
                {
                    "name": "process-agent",
                    "image": f"{_REGISTRY}/{_PROCESS_AGENT_IMAGE}",
                    "env": [api_key_env],
                },
            ],
            pod_spec={
                "hostNetwork": True,
                "hostPID": True,
                "serviceAccountName": f"{release}-node-agent",
            },
        ),
        chart.workload(
            "DaemonSet",
            "logs-agent",
            [
                {
                    "name": "logs-agent",
                    "image": f"{_REGISTRY}/{_LOGS_AGENT_IMAGE}",
                    "env": [api_key_env],
                }
            ],
            pod_spec={"serviceAccountName": f"{release}-logs-agent"},
        ),
        chart.workload(
            "Deployment",
            "cluster-agent",
            [
                {
                    "name": "cluster-agent",
                    "image": f"{_REGISTRY}/{_CLUSTER_AGENT_IMAGE}",
                    "env": [api_key_env, auth_token_env],
                }
            ],
            pod_spec={"serviceAccountName": fullname},
            spec={"replicas": 1},
        ),
        chart.workload(
            "Deployment",
            "checks-agent",
            [
                {
                    "name": K8S_AGENT_CHART,
                    "image": f"{_REGISTRY}/{_AGENT_IMAGE}",
                    "env": [api_key_env, auth_token_env],
                }
            ],
            pod_spec={"serviceAccountName": f"{release}-checks-agent"},
            spec={"replicas": 1},
        ),
    ]
    stored_secrets, workloads = _install(kube, namespace, manifests, rollout_seconds)
    return {
        "release": release,
        "namespace": namespace,
        "chart": chart.labels["helm.sh/chart"],
        "api_key_secret": reads,
        "api_key_key": key,
        "secrets": stored_secrets,
        "workloads": workloads,
    }
