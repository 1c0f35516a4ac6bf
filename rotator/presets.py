"""Presets: targets and consumers of well-known StackState consumers, so users need not know them.

Facts (``reference/README.md`` and the charts' templates):

- ``suse-observability-agent`` (current Helm chart): Secret ``<release>-secrets``, data key
  ``STS_API_KEY``, read through ``secretKeyRef`` at start-up by DaemonSets
  ``<release>-node-agent`` and ``<release>-logs-agent`` and Deployments
  ``<release>-cluster-agent`` and ``<release>-checks-agent``.
- ``stackstate-k8s-agent`` (older chart): Secret named by the chart's *fullname* (the release name
  when it already contains ``stackstate-k8s-agent``, else ``<release>-stackstate-k8s-agent``),
  data key ``sts-api-key``; the same four agent workloads, named after the release.
- ``otel-collector`` (SUSE docs): Secret ``open-telemetry-collector``, data key ``API_KEY``, read
  through ``envFrom`` by the collector Deployment (named after the release, default
  ``opentelemetry-collector``).
- ``linux-agent``: ``/etc/stackstate-agent/stackstate.yaml`` field ``api_key``, then
  ``systemctl restart stackstate-agent``.

The chart's ``checksum/secret`` annotation only changes on ``helm upgrade``, so a Secret patched by
the rotator does not roll the pods: the presets restart the workloads themselves (``action:
restart``) unless the preset says ``action: wait`` (Reloader, VSO or ESO does it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rotator.config import (
    CommandConsumer,
    Consumer,
    FileTarget,
    KubernetesSecretTarget,
    KubernetesWorkloadConsumer,
    LinuxAgentPreset,
    ManagedKey,
    OtelCollectorPreset,
    Preset,
    PresetWorkload,
    StackStateK8sAgentPreset,
    SuseObservabilityAgentPreset,
    Target,
)

_K8S_AGENT_CHART = "stackstate-k8s-agent"
_OTEL_SECRET = "open-telemetry-collector"  # noqa: S105 - a Secret name, not a password
_OTEL_DEFAULT_RELEASE = "opentelemetry-collector"


def _agent_workloads(release: str) -> list[PresetWorkload]:
    return [
        PresetWorkload(kind="DaemonSet", name=f"{release}-node-agent"),
        PresetWorkload(kind="DaemonSet", name=f"{release}-logs-agent"),
        PresetWorkload(kind="Deployment", name=f"{release}-cluster-agent"),
        PresetWorkload(kind="Deployment", name=f"{release}-checks-agent"),
    ]


def _k8s_agent_fullname(release: str) -> str:
    return release if _K8S_AGENT_CHART in release else f"{release}-{_K8S_AGENT_CHART}"


def expand_preset(preset: Preset) -> tuple[list[Target], list[Consumer]]:
    """The targets and consumers a preset stands for."""
    if isinstance(preset, LinuxAgentPreset):
        return (
            [FileTarget(type="file", path=preset.path, format="yaml", field=preset.field)],
            [CommandConsumer(type="command", command=["systemctl", "restart", preset.service])],
        )
    if isinstance(preset, SuseObservabilityAgentPreset):
        secret, data_key = f"{preset.release}-secrets", "STS_API_KEY"
        workloads = _agent_workloads(preset.release)
    elif isinstance(preset, StackStateK8sAgentPreset):
        secret, data_key = _k8s_agent_fullname(preset.release), "sts-api-key"
        workloads = _agent_workloads(preset.release)
    else:
        assert isinstance(preset, OtelCollectorPreset)
        secret, data_key = _OTEL_SECRET, "API_KEY"
        workloads = [
            PresetWorkload(kind="Deployment", name=preset.release or _OTEL_DEFAULT_RELEASE)
        ]
    target = KubernetesSecretTarget(
        type="kubernetes-secret",
        namespace=preset.namespace,
        name=preset.secret_name or secret,
        key=preset.secret_key or data_key,
        context=preset.context,
    )
    consumers: list[Consumer] = [
        KubernetesWorkloadConsumer(
            type="kubernetes-workload",
            namespace=preset.namespace,
            kind=w.kind,
            name=w.name,
            action=preset.action,
            context=preset.context,
        )
        for w in (preset.workloads if preset.workloads is not None else workloads)
    ]
    return [target], consumers


def effective_targets(key: ManagedKey) -> Sequence[Target]:
    """The preset's targets followed by the key's own."""
    preset_targets = expand_preset(key.preset)[0] if key.preset is not None else []
    return [*preset_targets, *key.targets]


def effective_consumers(key: ManagedKey) -> Sequence[Consumer]:
    """The preset's consumers followed by the key's own."""
    preset_consumers = expand_preset(key.preset)[1] if key.preset is not None else []
    return [*preset_consumers, *key.consumers]
