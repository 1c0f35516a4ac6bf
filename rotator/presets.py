"""Presets: targets and consumers of well-known StackState consumers, so users need not know them.

Facts (``reference/README.md`` and the charts' templates):

- ``suse-observability-agent`` (current Helm chart, 1.5.x): by default the chart renders the key
  into its own Secret ``<release>-secrets`` (labelled ``app.kubernetes.io/managed-by: Helm``),
  which every ``helm upgrade``, Fleet or Argo CD sync writes back: the rotator must never write
  it. The chart reads a Secret someone else owns with ``global.apiKey.fromSecret: <name>`` (data
  key ``STS_API_KEY``), so the preset writes its own Secret, ``<release>-rotated-api-key`` by
  default, and prints the Helm value that points the chart at it. Readers with default values:
  DaemonSets ``<release>-node-agent``, ``<release>-logs-agent`` and Deployments
  ``<release>-cluster-agent``, ``<release>-checks-agent`` (``secretKeyRef``) and
  ``<release>-rbac-agent`` (``envFrom``); optional components add more, so they are discovered.
- ``stackstate-k8s-agent`` (older chart): its own Secret is named by the chart's *fullname* (the
  release name when it already contains ``stackstate-k8s-agent``, else
  ``<release>-stackstate-k8s-agent``), data key ``sts-api-key``. A Secret of ours is read with
  ``stackstate.manageOwnSecrets: true``, ``stackstate.customSecretName: <name>`` and
  ``stackstate.customApiKeySecretKey: <key>``.
- ``otel-collector`` (SUSE docs): a Secret ``open-telemetry-collector`` the user creates, data
  key ``API_KEY``, read through ``envFrom`` by the collector.
- ``linux-agent``: ``/etc/stackstate-agent/stackstate.yaml`` field ``api_key``, then
  ``systemctl restart stackstate-agent``.

Helm presets discover their readers (every workload of the namespace whose pod template reads
the key, see :mod:`rotator.consumers.discovery`) unless ``workloads`` lists them. For the agent
charts the chart's own Secret is a *legacy* Secret: a workload still reading it blocks the key
with the migration steps, and while no target holds a value yet, the value in use is adopted from
it (copied, no key created), so the switch to the rotator's Secret has no ingestion gap.

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
    StackStateK8sAgentPreset,
    SuseObservabilityAgentPreset,
    Target,
)

_K8S_AGENT_CHART = "stackstate-k8s-agent"
_OTEL_SECRET = "open-telemetry-collector"  # noqa: S105 - a Secret name, not a password
_OTEL_DEFAULT_RELEASE = "opentelemetry-collector"
#: Suffix of the Secret the agent presets write (the chart uses -secrets and -api-key itself).
OWN_SECRET_SUFFIX = "-rotated-api-key"  # noqa: S105 - a Secret name, not a password


def _k8s_agent_fullname(release: str) -> str:
    return release if _K8S_AGENT_CHART in release else f"{release}-{_K8S_AGENT_CHART}"


def _helm_facts(preset: Preset) -> tuple[str, str, str | None]:
    """(Secret the preset writes, its data key, the chart's own Secret or None)."""
    if isinstance(preset, SuseObservabilityAgentPreset):
        chart_secret, data_key = f"{preset.release}-secrets", "STS_API_KEY"
        default = f"{preset.release}{OWN_SECRET_SUFFIX}"
    elif isinstance(preset, StackStateK8sAgentPreset):
        chart_secret, data_key = _k8s_agent_fullname(preset.release), "sts-api-key"
        default = f"{preset.release}{OWN_SECRET_SUFFIX}"
    else:
        assert isinstance(preset, OtelCollectorPreset)
        chart_secret, data_key, default = "", "API_KEY", _OTEL_SECRET
    assert not isinstance(preset, LinuxAgentPreset)
    secret = preset.secret_name or default
    return secret, preset.secret_key or data_key, (chart_secret or None)


def helm_values(preset: Preset | None) -> list[tuple[str, str]]:
    """The Helm values (``--set`` paths and values) that point the chart at the preset's Secret;
    empty for presets whose Secret the chart does not render."""
    if isinstance(preset, SuseObservabilityAgentPreset):
        return [("global.apiKey.fromSecret", _helm_facts(preset)[0])]
    if isinstance(preset, StackStateK8sAgentPreset):
        secret, data_key, _ = _helm_facts(preset)
        return [
            ("stackstate.manageOwnSecrets", "true"),
            ("stackstate.customSecretName", secret),
            ("stackstate.customApiKeySecretKey", data_key),
        ]
    return []


def helm_hint(preset: Preset | None) -> str | None:
    """One sentence: the ``helm upgrade`` that points the chart at the preset's Secret."""
    values = helm_values(preset)
    if not values or preset is None or isinstance(preset, LinuxAgentPreset):
        return None
    sets = " ".join(f"--set {path}={value}" for path, value in values)
    return (
        f"Point the chart at it: helm upgrade {preset.release} <chart> -n {preset.namespace} "
        f"--reuse-values {sets}"
    )


def adopt_source(preset: Preset | None) -> KubernetesSecretTarget | None:
    """The chart's own Secret the preset migrates from (its value is adopted while the
    preset's Secret is still empty); None when there is none."""
    if preset is None or isinstance(preset, LinuxAgentPreset):
        return None
    secret, data_key, chart_secret = _helm_facts(preset)
    if chart_secret is None or chart_secret == secret:
        return None
    return KubernetesSecretTarget(
        type="kubernetes-secret",
        namespace=preset.namespace,
        name=chart_secret,
        key=data_key,
        context=preset.context,
    )


def expand_preset(preset: Preset) -> tuple[list[Target], list[Consumer]]:
    """The targets and consumers a preset stands for."""
    if isinstance(preset, LinuxAgentPreset):
        return (
            [FileTarget(type="file", path=preset.path, format="yaml", field=preset.field)],
            [CommandConsumer(type="command", command=["systemctl", "restart", preset.service])],
        )
    secret, data_key, chart_secret = _helm_facts(preset)
    target = KubernetesSecretTarget(
        type="kubernetes-secret",
        namespace=preset.namespace,
        name=secret,
        key=data_key,
        context=preset.context,
    )
    if preset.workloads is None:
        return [target], [
            KubernetesWorkloadConsumer(
                type="kubernetes-workload",
                namespace=preset.namespace,
                discover=True,
                legacy_secrets=[chart_secret] if chart_secret and chart_secret != secret else [],
                action=preset.action,
                context=preset.context,
            )
        ]
    consumers: list[Consumer] = [
        KubernetesWorkloadConsumer(
            type="kubernetes-workload",
            namespace=preset.namespace,
            kind=w.kind,
            name=w.name,
            action=preset.action,
            context=preset.context,
        )
        for w in preset.workloads
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
