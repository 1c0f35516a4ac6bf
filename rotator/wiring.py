"""From a validated configuration to live objects: the StackState client, shared Kubernetes and
Vault sessions, target adapters and the engine's :class:`~rotator.engine.model.KeySpec` list.

This is the one place that knows both the configuration models and the adapters; the engine
sees only specs and Protocols. Connections are opened lazily, so building a runtime for a
dry-run or ``status`` sends nothing until the engine observes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from rotator import config as cfg
from rotator.consumers.base import Consumer
from rotator.consumers.command import CommandConsumer
from rotator.consumers.discovery import DiscoveredWorkloads
from rotator.consumers.kubernetes_workload import KubernetesWorkloadConsumer
from rotator.consumers.synced_secret import SyncedSecretConsumer
from rotator.engine.model import KeySpec
from rotator.engine.policy import Windows
from rotator.errors import ConfigError
from rotator.kube import KubeClients
from rotator.secrets import Secret
from rotator.stackstate import StackStateClient
from rotator.targets.base import Target
from rotator.targets.file import FileTarget, FileTargetGroup
from rotator.targets.kubernetes import KubernetesSecretTarget
from rotator.targets.vault import (
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultAuth,
    VaultKvTarget,
    VaultSession,
)


@dataclass
class Runtime:
    """Everything a run needs, built from one configuration; close() releases connections."""

    config: cfg.RotatorConfig
    stackstate: StackStateClient
    specs: list[KeySpec]
    kube: KubeClients
    vault: VaultSession | None = None
    _closed: bool = field(default=False, repr=False)

    def select(self, names: Sequence[str]) -> list[KeySpec]:
        """The specs named (all when ``names`` is empty); an unknown name is a ConfigError."""
        if not names:
            return list(self.specs)
        known = {s.name: s for s in self.specs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"--key {', '.join(unknown)}: no such managed key "
                f"(configured: {', '.join(known) or 'none'})"
            )
        return [known[n] for n in dict.fromkeys(names)]

    def close(self) -> None:
        """Close every connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.stackstate.close()
        self.kube.close()
        if self.vault is not None:
            self.vault.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _vault_auth(
    auth: cfg.VaultTokenAuth | cfg.VaultAppRoleAuth | cfg.VaultKubernetesAuth,
) -> VaultAuth:
    if isinstance(auth, cfg.VaultTokenAuth):
        assert auth.token is not None
        return TokenAuth(token=Secret(auth.token.get_secret_value()))
    if isinstance(auth, cfg.VaultAppRoleAuth):
        assert auth.secret_id is not None
        return AppRoleAuth(
            role_id=auth.role_id,
            secret_id=Secret(auth.secret_id.get_secret_value()),
            mount=auth.mount,
        )
    return KubernetesAuth(role=auth.role, jwt_file=auth.jwt_file, mount=auth.mount)


def vault_session(settings: cfg.VaultSettings) -> VaultSession:
    """A lazily-authenticating Vault session for the ``vault:`` section."""
    return VaultSession(
        url=settings.url,
        namespace=settings.namespace,
        ca_file=settings.ca_file,
        timeout=settings.timeout.total_seconds(),
        auth=_vault_auth(settings.auth),
    )


def build_target(
    spec: cfg.Target,
    kube: KubeClients,
    vault: VaultSession | None,
    foreign_owner_labels: Sequence[str] = (),
    files: FileTargetGroup | None = None,
) -> Target:
    """The adapter for one configured target (``files``: the file targets it must not share a
    file with)."""
    if isinstance(spec, cfg.KubernetesSecretTarget):
        return KubernetesSecretTarget(
            kube,
            namespace=spec.namespace,
            name=spec.name,
            key=spec.key,
            context=spec.context,
            allow_foreign_owner=spec.allow_foreign_owner,
            foreign_owner_labels=tuple(foreign_owner_labels),
        )
    if isinstance(spec, cfg.VaultKvTarget):
        if vault is None:
            raise ConfigError("a vault-kv target needs the vault: section")
        return VaultKvTarget(
            vault, mount=spec.mount, path=spec.path, key=spec.key, kv_version=spec.kv_version
        )
    return FileTarget(
        spec.path, file_format=spec.format, field=spec.field, mode=spec.mode, group=files
    )


def build_consumers(
    spec: cfg.Consumer,
    kube: KubeClients,
    key: cfg.ManagedKey | None = None,
    default_context: str | None = None,
) -> list[Consumer]:
    """The adapters for one configured consumer: one, or for ``discover: true`` one per
    kubernetes-secret target of ``key`` in the consumer's namespace and context."""
    if isinstance(spec, cfg.KubernetesWorkloadConsumer) and spec.discover:
        assert key is not None, "discovery needs the managed key's targets"
        context = spec.context or default_context
        secrets = [
            t
            for t in key.effective_targets
            if isinstance(t, cfg.KubernetesSecretTarget)
            and t.namespace == spec.namespace
            and (t.context or default_context) == context
        ]
        if not secrets:
            raise ConfigError(
                f"key {key.name}: a kubernetes-workload consumer with discover: true needs a "
                f"kubernetes-secret target in namespace {spec.namespace}"
            )
        return [
            DiscoveredWorkloads(
                kube,
                namespace=spec.namespace,
                secret=t.name,
                key=t.key,
                action=spec.action,
                context=spec.context,
                legacy_secrets=spec.legacy_secrets,
                migration_hint=key.helm_hint,
            )
            for t in secrets
        ]
    return [build_consumer(spec, kube)]


def build_consumer(spec: cfg.Consumer, kube: KubeClients) -> Consumer:
    """The adapter for one configured consumer (not ``discover: true``, see build_consumers)."""
    if isinstance(spec, cfg.KubernetesWorkloadConsumer):
        assert spec.kind is not None, "validated: kind is required without discover"
        return KubernetesWorkloadConsumer(
            kube,
            namespace=spec.namespace,
            kind=spec.kind,
            name=spec.name,
            selector=spec.selector,
            action=spec.action,
            context=spec.context,
        )
    if isinstance(spec, cfg.SyncedSecretConsumer):
        return SyncedSecretConsumer(
            kube, namespace=spec.namespace, name=spec.name, key=spec.key, context=spec.context
        )
    return CommandConsumer(
        command=spec.command,
        timeout=spec.timeout.total_seconds(),
        pass_key=spec.pass_key,
        env=spec.env,
    )


def key_spec(
    key: cfg.ManagedKey,
    targets: Sequence[Target],
    consumers: Sequence[Consumer] = (),
    adopt_from: Target | None = None,
) -> KeySpec:
    """The engine's view of one managed key (policy resolved, adapters attached)."""
    policy = key.policy
    rotate_before = policy.rotate_before
    return KeySpec(
        name=key.name,
        kind=key.kind.value,
        roles=tuple(key.roles) if key.roles is not None else None,
        description=key.description,
        dedicated_subject=key.dedicated_subject,
        validity=policy.validity,
        rotate_before=rotate_before,
        grace_period=policy.grace_period,
        switch_timeout=policy.switch_timeout,
        orphan_min_age=policy.orphan_min_age,
        windows=Windows(policy.windows),
        targets=tuple(targets),
        adopt_key_id=key.adopt_key_id,
        consumers=tuple(consumers),
        alert_before=policy.alert_before,
        interval=policy.schedule.interval,
        cron=policy.schedule.cron,
        jitter=policy.schedule.jitter,
        recheck=policy.schedule.recheck,
        adopt_from=adopt_from,
        helm_values=key.helm_values,
    )


def build_runtime(config: cfg.RotatorConfig) -> Runtime:
    """Build the client, sessions, targets and specs for a configuration (no network yet)."""
    stackstate = StackStateClient.from_settings(config.stackstate)
    kube = KubeClients(config.kubernetes.kubeconfig, config.kubernetes.context)
    vault = vault_session(config.vault) if config.vault is not None else None
    labels = config.kubernetes.foreign_owner_labels
    context = config.kubernetes.context
    files = FileTargetGroup()
    specs = []
    for key in config.keys:
        source = key.adopt_source
        specs.append(
            key_spec(
                key,
                [build_target(t, kube, vault, labels, files) for t in key.effective_targets],
                [
                    adapter
                    for c in key.effective_consumers
                    for adapter in build_consumers(c, kube, key, context)
                ],
                build_target(source, kube, vault, labels) if source is not None else None,
            )
        )
    return Runtime(config=config, stackstate=stackstate, specs=specs, kube=kube, vault=vault)
