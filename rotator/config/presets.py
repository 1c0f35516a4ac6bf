"""Presets: targets and consumers of well-known StackState consumers, so users need not know them.

This module holds the ``preset:`` models and what each expands into (:func:`expand_preset`).
A preset is expanded once, when its :class:`~rotator.config.ManagedKey` is validated; everything
downstream (the configuration's own checks, wiring, doctor, rbac, check-config) reads the result
from the key: ``effective_targets``, ``effective_consumers``, ``adopt_source``, ``helm_values``
and ``helm_hint``.

Facts (the charts' templates and values):

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

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field

from rotator.config.base import ConfigModel
from rotator.config.delivery import (
    CommandConsumer,
    Consumer,
    FileTarget,
    KubernetesSecretTarget,
    KubernetesWorkloadConsumer,
    Target,
)
from rotator.config.types import (
    ConfigPath,
    ConsumerAction,
    Namespace,
    NonEmptyStr,
    ObjectName,
    SecretDataKey,
    WorkloadKind,
)

_K8S_AGENT_CHART: Final = "stackstate-k8s-agent"
_OTEL_SECRET: Final = "open-telemetry-collector"  # noqa: S105 - a Secret name, not a password
_OTEL_DEFAULT_RELEASE: Final = "opentelemetry-collector"
#: Suffix of the Secret the agent presets write (the chart uses -secrets and -api-key itself).
OWN_SECRET_SUFFIX: Final = "-rotated-api-key"  # noqa: S105 - a Secret name, not a password

# --------------------------------------------------------------------------------------------
# The models of `preset:`
# --------------------------------------------------------------------------------------------


class PresetWorkload(ConfigModel):
    """A workload a preset restarts, replacing the chart's default list."""

    kind: WorkloadKind
    name: ObjectName


class _HelmPreset(ConfigModel):
    """Fields shared by the presets of Helm-installed agents and collectors."""

    release: ObjectName
    """Helm release name."""
    namespace: Namespace
    """Namespace of the release."""
    secret_name: ObjectName | None = None
    """Override the Secret the rotator writes (agent charts: default <release>-rotated-api-key,
    which the chart is pointed at with the Helm values rotate --dry-run and doctor print)."""
    secret_key: SecretDataKey | None = None
    """Override the data key in that Secret."""
    workloads: list[PresetWorkload] | None = None
    """Restart exactly these workloads instead of discovering every workload that reads the
    Secret (discovery is the default)."""
    action: ConsumerAction = "restart"
    """restart the workloads, or wait for Reloader/VSO/ESO to do it."""
    context: NonEmptyStr | None = None
    """Kubeconfig context of the cluster the release runs in."""


class SuseObservabilityAgentPreset(_HelmPreset):
    """The current suse-observability-agent Helm chart."""

    type: Literal["suse-observability-agent"]


class StackStateK8sAgentPreset(_HelmPreset):
    """The older stackstate-k8s-agent Helm chart."""

    type: Literal["stackstate-k8s-agent"]


class OtelCollectorPreset(_HelmPreset):
    """An OpenTelemetry Collector set up as the SUSE Observability docs describe."""

    type: Literal["otel-collector"]
    release: ObjectName = _OTEL_DEFAULT_RELEASE
    """Helm release name of the collector (its Deployment is named after it)."""


class LinuxAgentPreset(ConfigModel):
    """The StackState Agent on a Linux host (systemd)."""

    type: Literal["linux-agent"]
    path: ConfigPath = Path("/etc/stackstate-agent/stackstate.yaml")
    """The agent's configuration file."""
    field: NonEmptyStr = "api_key"
    """Dotted YAML path of the key in that file."""
    service: NonEmptyStr = "stackstate-agent"
    """systemd unit restarted after a change."""


Preset = Annotated[
    SuseObservabilityAgentPreset
    | StackStateK8sAgentPreset
    | OtelCollectorPreset
    | LinuxAgentPreset,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """What a preset stands for; :class:`~rotator.config.ManagedKey` computes it once."""

    targets: tuple[Target, ...] = ()
    """The targets the preset writes (before the key's own)."""
    consumers: tuple[Consumer, ...] = ()
    """The consumers that read them (before the key's own)."""
    adopt_source: KubernetesSecretTarget | None = None
    """The chart's own Secret the preset migrates from: its value is adopted while the
    preset's Secret is still empty."""
    helm_values: tuple[tuple[str, str], ...] = ()
    """The Helm values (``--set`` paths and values) that point the chart at the preset's
    Secret; empty for presets whose Secret the chart does not render."""
    helm_hint: str | None = None
    """One sentence: the ``helm upgrade`` that sets ``helm_values``."""


#: The expansion of a key without a preset.
NO_PRESET: Final = Expansion()


def expand_preset(preset: Preset | None) -> Expansion:
    """The targets, consumers, adoption source and Helm values a preset stands for."""
    if preset is None:
        return NO_PRESET
    if isinstance(preset, LinuxAgentPreset):
        return Expansion(
            targets=(FileTarget(type="file", path=preset.path, format="yaml", field=preset.field),),
            consumers=(
                CommandConsumer(type="command", command=["systemctl", "restart", preset.service]),
            ),
        )
    secret, data_key, chart_secret = _helm_facts(preset)
    legacy = chart_secret if chart_secret is not None and chart_secret != secret else None
    target = KubernetesSecretTarget(
        type="kubernetes-secret",
        namespace=preset.namespace,
        name=secret,
        key=data_key,
        context=preset.context,
    )
    source = None
    if legacy is not None:
        source = KubernetesSecretTarget(
            type="kubernetes-secret",
            namespace=preset.namespace,
            name=legacy,
            key=data_key,
            context=preset.context,
        )
    values = _helm_values(preset, secret, data_key)
    return Expansion(
        targets=(target,),
        consumers=_workloads(preset, legacy),
        adopt_source=source,
        helm_values=values,
        helm_hint=_helm_hint(preset, values),
    )


def _k8s_agent_fullname(release: str) -> str:
    return release if _K8S_AGENT_CHART in release else f"{release}-{_K8S_AGENT_CHART}"


def _helm_facts(preset: _HelmPreset) -> tuple[str, str, str | None]:
    """(Secret the preset writes, its data key, the chart's own Secret or None)."""
    if isinstance(preset, SuseObservabilityAgentPreset):
        chart_secret, data_key = f"{preset.release}-secrets", "STS_API_KEY"
        default = f"{preset.release}{OWN_SECRET_SUFFIX}"
    elif isinstance(preset, StackStateK8sAgentPreset):
        chart_secret, data_key = _k8s_agent_fullname(preset.release), "sts-api-key"
        default = f"{preset.release}{OWN_SECRET_SUFFIX}"
    else:
        chart_secret, data_key, default = "", "API_KEY", _OTEL_SECRET
    secret = preset.secret_name or default
    return secret, preset.secret_key or data_key, (chart_secret or None)


def _workloads(preset: _HelmPreset, legacy: str | None) -> tuple[Consumer, ...]:
    """The workloads the preset lists, or one consumer discovering every reader."""
    if preset.workloads is None:
        return (
            KubernetesWorkloadConsumer(
                type="kubernetes-workload",
                namespace=preset.namespace,
                discover=True,
                legacy_secrets=[] if legacy is None else [legacy],
                action=preset.action,
                context=preset.context,
            ),
        )
    return tuple(
        KubernetesWorkloadConsumer(
            type="kubernetes-workload",
            namespace=preset.namespace,
            kind=w.kind,
            name=w.name,
            action=preset.action,
            context=preset.context,
        )
        for w in preset.workloads
    )


def _helm_values(preset: _HelmPreset, secret: str, data_key: str) -> tuple[tuple[str, str], ...]:
    if isinstance(preset, SuseObservabilityAgentPreset):
        return (("global.apiKey.fromSecret", secret),)
    if isinstance(preset, StackStateK8sAgentPreset):
        return (
            ("stackstate.manageOwnSecrets", "true"),
            ("stackstate.customSecretName", secret),
            ("stackstate.customApiKeySecretKey", data_key),
        )
    return ()


def _helm_hint(preset: _HelmPreset, values: tuple[tuple[str, str], ...]) -> str | None:
    if not values:
        return None
    sets = " ".join(f"--set {path}={value}" for path, value in values)
    return (
        f"Point the chart at it: helm upgrade {preset.release} <chart> -n {preset.namespace} "
        f"--reuse-values {sets}"
    )
