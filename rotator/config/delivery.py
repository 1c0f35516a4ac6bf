"""Delivery: the targets a key's value is written to and the consumers that must switch to it.

``Target`` and ``Consumer`` are discriminated unions (by ``type``); the adapters that act on them
live in :mod:`rotator.targets` and :mod:`rotator.consumers`, built by :mod:`rotator.wiring`.
Presets expand into these same models (:mod:`rotator.config.presets`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.types import (
    ChildEnv,
    ConfigPath,
    ConsumerAction,
    FileMode,
    KvVersion,
    Namespace,
    NonEmptyStr,
    ObjectName,
    PositiveDuration,
    SecretDataKey,
    VaultMount,
    VaultPath,
    WorkloadKind,
    is_env_name,
)


class KubernetesSecretTarget(ConfigModel):
    """A data key of a Kubernetes Secret."""

    type: Literal["kubernetes-secret"]
    namespace: Namespace
    name: ObjectName
    """Secret name."""
    key: SecretDataKey
    """Data key in the Secret."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; default: kubernetes.context."""
    allow_foreign_owner: bool = False
    """Write the Secret although Helm, Argo CD, Flux or a controller owns it (they will write
    their value back: only for owners that render the value the rotator gives them)."""


class VaultKvTarget(ConfigModel):
    """A key of a Vault KV secret (engine version 1 or 2)."""

    type: Literal["vault-kv"]
    mount: VaultMount = "secret"
    """Mount path of the KV engine."""
    path: VaultPath
    """Secret path under the mount."""
    key: NonEmptyStr
    """Key inside the secret."""
    kv_version: KvVersion = 2
    """KV engine version."""


class FileTarget(ConfigModel):
    """A local file: the whole file (raw), a variable of an env file, or a field of a YAML file."""

    type: Literal["file"]
    path: ConfigPath
    format: Literal["raw", "env", "yaml"] = "raw"
    """raw: the file is the key; env: KEY=value lines; yaml: a field of a YAML document."""
    field: NonEmptyStr | None = None
    """env: the variable name; yaml: the dotted path of the field. Not used by raw."""
    mode: FileMode | None = None
    """Permission bits; null: an existing file keeps its mode, a new file gets 0600."""

    @model_validator(mode="after")
    def _field_matches_format(self) -> FileTarget:
        if self.format == "raw" and self.field is not None:
            raise_problems([("field", "a raw file holds only the key: remove field")])
        if self.format != "raw" and self.field is None:
            what = "variable name" if self.format == "env" else "dotted path of the YAML field"
            raise_problems([("field", f"format {self.format} needs field (the {what})")])
        if self.format == "env" and self.field is not None and not is_env_name(self.field):
            raise_problems([("field", "must be a variable name: letters, digits and _")])
        if self.format == "yaml" and self.field is not None and "" in self.field.split("."):
            raise_problems([("field", "must be a dotted path such as api_key or agent.api_key")])
        return self


Target = Annotated[KubernetesSecretTarget | VaultKvTarget | FileTarget, Field(discriminator="type")]


class KubernetesWorkloadConsumer(ConfigModel):
    """A Deployment, DaemonSet or StatefulSet reading the key; switched when its rollout is done."""

    type: Literal["kubernetes-workload"]
    namespace: Namespace
    kind: WorkloadKind | None = None
    """Deployment, DaemonSet or StatefulSet (with name or selector; not with discover)."""
    name: ObjectName | None = None
    """Workload name (or selector, or discover)."""
    selector: dict[str, str] | None = None
    """Label selector matching the workloads (or name, or discover)."""
    discover: bool = False
    """Find, on every run, every Deployment, DaemonSet and StatefulSet of the namespace whose
    pod template reads the key of this managed key's kubernetes-secret target(s) there (env
    secretKeyRef, envFrom, secret or projected volumes); CronJobs and Jobs are listed only."""
    legacy_secrets: list[ObjectName] = Field(default_factory=list)
    """With discover: Secrets readers must have left (e.g. a chart's own Secret the key moved
    from); a workload still reading one blocks the key, since it would keep the old key."""
    action: ConsumerAction = "restart"
    """restart it, or wait for Reloader/VSO/ESO to restart it."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; default: kubernetes.context."""

    @model_validator(mode="after")
    def _name_xor_selector(self) -> KubernetesWorkloadConsumer:
        given = sum((self.name is not None, self.selector is not None, self.discover))
        if given != 1:
            raise_problems([("name", "give exactly one of name, selector or discover: true")])
        if self.selector is not None and not self.selector:
            raise_problems([("selector", "must hold at least one label")])
        if self.discover and self.kind is not None:
            raise_problems([("kind", "discover finds every kind: remove kind")])
        if not self.discover and self.kind is None:
            raise_problems([("kind", "Field required (Deployment, DaemonSet or StatefulSet)")])
        if self.legacy_secrets and not self.discover:
            raise_problems([("legacy_secrets", "only used with discover: true")])
        return self


class SyncedSecretConsumer(ConfigModel):
    """A Secret that ESO/VSO syncs from a vault-kv target: switched when it holds the new value."""

    type: Literal["synced-secret"]
    namespace: Namespace
    name: ObjectName
    key: SecretDataKey
    context: NonEmptyStr | None = None


class CommandConsumer(ConfigModel):
    """A command run after the push (e.g. systemctl restart); exit status 0 means switched."""

    type: Literal["command"]
    command: Annotated[list[NonEmptyStr], Field(min_length=1)]
    """Program and arguments (no shell)."""
    timeout: PositiveDuration = timedelta(minutes=2)
    pass_key: Literal["none", "stdin"] = "none"  # noqa: S105 - a mode name, not a password
    """stdin: the new key value is written to the command's standard input."""
    env: ChildEnv = Field(default_factory=dict)
    """Environment variables of the command (values may use ${VAR}). It gets these, PATH,
    HOME, LANG and LC_ALL (when set), ROTATOR_MANAGED_KEY and ROTATOR_FINGERPRINT, nothing
    else: never the rotator's own credentials."""


Consumer = Annotated[
    KubernetesWorkloadConsumer | SyncedSecretConsumer | CommandConsumer,
    Field(discriminator="type"),
]
