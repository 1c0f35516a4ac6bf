"""From a validated configuration to live objects: the StackState client, shared Kubernetes and
Vault sessions, target adapters and the engine's :class:`~rotator.engine.model.KeySpec` list.

This is the one place that knows both the configuration models and the adapters; the engine
sees only specs and Protocols. Connections are opened lazily, so building a runtime for a
dry-run or ``status`` sends nothing until the engine observes.

The daemon, ``rotate`` and the lock's alerts get the rest of their objects here too:
:func:`build_alerter` (the ``alerts:`` hooks, :func:`build_hooks`, with deduplication state
beside ``history.path``), :func:`build_history`, :func:`build_leader_elector` and
:func:`build_lease_lock`. Adapters never see a configuration model (``lint-imports`` checks it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

from rotator import config as cfg
from rotator.clients.kubernetes import KubeClients
from rotator.clients.stackstate import StackStateClient
from rotator.consumers.base import Consumer
from rotator.consumers.command import CommandConsumer
from rotator.consumers.discovery import DiscoveredWorkloads
from rotator.consumers.kubernetes_workload import KubernetesWorkloadConsumer
from rotator.consumers.synced_secret import SyncedSecretConsumer
from rotator.engine.model import KeySpec
from rotator.engine.policy import Windows
from rotator.errors import ConfigError
from rotator.secrets import Secret
from rotator.targets.base import Target
from rotator.targets.file import FileTarget, FileTargetGroup

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from pydantic import SecretStr

    from rotator.alerts.base import AlertHook
    from rotator.alerts.dispatch import Alerter, ResultCallback
    from rotator.clients.vault import VaultAuth, VaultSession
    from rotator.daemon.history import History
    from rotator.daemon.leader import LeaderElector, LeaderRecord
    from rotator.daemon.lease import LeaseLock

#: The configuration model of one alert hook (an entry of ``alerts:``).
HookConfig = (
    cfg.WebhookAlert
    | cfg.SlackAlert
    | cfg.PagerDutyAlert
    | cfg.AlertmanagerAlert
    | cfg.CommandAlert
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


def build_stackstate_client(settings: cfg.StackStateSettings) -> StackStateClient:
    """The StackState client of the ``stackstate:`` section (nothing is sent yet).

    Raises :class:`ConfigError` for an ``http://`` URL unless ``allow_insecure_http``, and for
    an unusable URL, credential or CA file.
    """
    scheme = urlsplit(settings.url).scheme.lower()
    if scheme == "http" and not settings.allow_insecure_http:
        raise ConfigError(
            "stackstate.url: plain http:// would send credentials unencrypted; use https:// "
            "or set stackstate.allow_insecure_http: true"
        )

    def secret(value: SecretStr | None) -> Secret | None:
        return None if value is None else Secret(value.get_secret_value())

    return StackStateClient(
        base_url=settings.url,
        api_path=settings.api_path,
        service_token=secret(settings.service_token),
        api_token=secret(settings.api_token),
        service_bearer_file=settings.service_bearer_file,
        ca_file=settings.ca_file,
        timeout=settings.timeout.total_seconds(),
    )


def _vault_auth(
    auth: cfg.VaultTokenAuth | cfg.VaultAppRoleAuth | cfg.VaultKubernetesAuth,
) -> VaultAuth:
    # The Vault client (hvac) loads only for a configuration with a vault: section.
    from rotator.clients.vault import AppRoleAuth, KubernetesAuth, TokenAuth  # noqa: PLC0415

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


def vault_session(settings: cfg.VaultSettings, *, pool_size: int | None = None) -> VaultSession:
    """A lazily-authenticating Vault session for the ``vault:`` section; ``pool_size``: the
    connections it keeps (the run's ``workers``; default the session's own)."""
    from rotator.clients.vault import DEFAULT_POOL_SIZE, VaultSession  # noqa: PLC0415

    return VaultSession(
        url=settings.url,
        namespace=settings.namespace,
        ca_file=settings.ca_file,
        timeout=settings.timeout.total_seconds(),
        auth=_vault_auth(settings.auth),
        pool_size=pool_size or DEFAULT_POOL_SIZE,
    )


def build_target(
    spec: cfg.Target,
    kube: KubeClients,
    vault: VaultSession | None,
    foreign_owner_labels: Sequence[str] = (),
    files: FileTargetGroup | None = None,
    *,
    kubernetes: cfg.KubernetesSettings | None = None,
) -> Target:
    """The adapter for one configured target (``files``: the file targets it must not share a
    file with; ``kubernetes``: the section whose ``read`` mode applies to Secret targets)."""
    if isinstance(spec, cfg.KubernetesSecretTarget):
        # The kubernetes package loads only for a configuration with a Secret target.
        from rotator.targets.kubernetes import KubernetesSecretTarget  # noqa: PLC0415

        return KubernetesSecretTarget(
            kube,
            namespace=spec.namespace,
            name=spec.name,
            key=spec.key,
            context=spec.context,
            allow_foreign_owner=spec.allow_foreign_owner,
            foreign_owner_labels=tuple(foreign_owner_labels),
            read_mode=kubernetes.read_mode(spec.context) if kubernetes is not None else "get",
        )
    if isinstance(spec, cfg.VaultKvTarget):
        if vault is None:
            raise ConfigError("a vault-kv target needs the vault: section")
        from rotator.targets.vault import VaultKvTarget  # noqa: PLC0415 - see _vault_auth

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
        kind=key.kind,
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
        adopt_from=adopt_from,
        helm_values=key.helm_values,
        suspended=key.suspend,
    )


def build_runtime(config: cfg.RotatorConfig) -> Runtime:
    """Build the client, sessions, targets and specs for a configuration (no network yet)."""
    stackstate = build_stackstate_client(config.stackstate)
    # Pools sized to the observation's workers: each read in flight holds one connection.
    kube = KubeClients(
        config.kubernetes.kubeconfig, config.kubernetes.context, pool_size=config.workers
    )
    vault = (
        vault_session(config.vault, pool_size=config.workers) if config.vault is not None else None
    )
    labels = config.kubernetes.foreign_owner_labels
    context = config.kubernetes.context
    files = FileTargetGroup()
    specs = []
    for key in config.keys:
        source = key.adopt_source
        specs.append(
            key_spec(
                key,
                [
                    build_target(t, kube, vault, labels, files, kubernetes=config.kubernetes)
                    for t in key.effective_targets
                ],
                [
                    adapter
                    for c in key.effective_consumers
                    for adapter in build_consumers(c, kube, key, context)
                ],
                (
                    build_target(source, kube, vault, labels, kubernetes=config.kubernetes)
                    if source is not None
                    else None
                ),
            )
        )
    return Runtime(config=config, stackstate=stackstate, specs=specs, kube=kube, vault=vault)


# -- alerts and history: the daemon, rotate and the lock's alerts get them here -------------------
# The hook modules (httpx) load on use: a run without alerts never imports them.


def hook_name(config: HookConfig, index: int) -> str:
    """The configured name, or ``<type>[<index>]``."""
    return config.name or f"{config.type}[{index}]"


def build_hook(config: HookConfig, index: int) -> AlertHook:
    """The hook instance for one ``alerts:`` entry (secrets revealed only into the hook)."""
    # The hook modules load on use: a run without alerts never imports them (nor httpx).
    from rotator.alerts.alertmanager import AlertmanagerHook  # noqa: PLC0415
    from rotator.alerts.command import CommandHook  # noqa: PLC0415
    from rotator.alerts.pagerduty import PagerDutyHook  # noqa: PLC0415
    from rotator.alerts.slack import SlackHook  # noqa: PLC0415
    from rotator.alerts.webhook import WebhookHook  # noqa: PLC0415

    name = hook_name(config, index)
    timeout = config.timeout.total_seconds()
    if isinstance(config, cfg.WebhookAlert):
        secret = config.hmac_secret.get_secret_value() if config.hmac_secret else None
        headers = {key: value.get_secret_value() for key, value in config.headers.items()}
        return WebhookHook(name, config.url, timeout=timeout, hmac_secret=secret, headers=headers)
    if isinstance(config, cfg.SlackAlert):
        if config.webhook_url is None:  # the config model rejects this already
            raise ValueError(f"slack hook {name}: webhook_url is missing")
        return SlackHook(name, config.webhook_url.get_secret_value(), timeout=timeout)
    if isinstance(config, cfg.PagerDutyAlert):
        if config.routing_key is None:  # the config model rejects this already
            raise ValueError(f"pagerduty hook {name}: routing_key is missing")
        return PagerDutyHook(
            name, config.routing_key.get_secret_value(), url=config.url, timeout=timeout
        )
    if isinstance(config, cfg.AlertmanagerAlert):
        # Twice the repeat interval: a firing alert outlives the gap until its next re-send.
        return AlertmanagerHook(name, config.url, timeout=timeout, hold=config.repeat_interval * 2)
    return CommandHook(name, config.command, timeout=timeout, env=config.env)


def build_hooks(configs: Sequence[HookConfig]) -> list[tuple[HookConfig, AlertHook]]:
    """Each ``alerts:`` entry paired with its hook instance, in configuration order (the entry
    is the hook's route: events, ``repeat_interval``, ``timeout``)."""
    return [(config, build_hook(config, index)) for index, config in enumerate(configs)]


def build_alerter(
    config: cfg.RotatorConfig,
    *,
    clock: Callable[[], datetime],
    on_result: ResultCallback | None = None,
) -> Alerter:
    """The alerter for ``alerts:``; its deduplication state lives beside ``history.path``."""
    from rotator.alerts.dispatch import Alerter  # noqa: PLC0415 - see build_hook
    from rotator.daemon.history import alert_state_path  # noqa: PLC0415

    return Alerter(
        build_hooks(config.alerts),
        clock=clock,
        on_result=on_result,
        state_path=alert_state_path(config.history.path),
    )


def build_history(config: cfg.RotatorConfig) -> History | None:
    """The audit history of ``history:`` (None without ``history.path``)."""
    from rotator.daemon.history import History  # noqa: PLC0415 - see build_hook

    if config.history.path is None:
        return None
    return History(config.history.path, max_bytes=config.history.max_bytes)


def build_leader_elector(
    config: cfg.RotatorConfig,
    kube: KubeClients,
    *,
    on_started_leading: Callable[[], None],
    on_stopped_leading: Callable[[], None],
    on_renewed: Callable[[LeaderRecord], None] | None = None,
    holder_annotations: Mapping[str, str] | None = None,
) -> LeaderElector | None:
    """The daemon's Lease elector for ``leader_election:`` (None when it is disabled).

    The identity defaults to ``<hostname>-<pid>``; nothing is contacted before ``start()``.
    """
    from rotator.daemon.leader import LeaderElector  # noqa: PLC0415 - daemon only

    settings = config.leader_election
    if not settings.enabled:
        return None
    identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
    return LeaderElector(
        build_lease_lock(config, kube, identity),
        identity=identity,
        lease_duration=settings.lease_duration.total_seconds(),
        renew_deadline=settings.renew_deadline.total_seconds(),
        retry_period=settings.retry_period.total_seconds(),
        on_started_leading=on_started_leading,
        on_stopped_leading=on_stopped_leading,
        on_renewed=on_renewed,
        holder_annotations=holder_annotations,
    )


def build_lease_lock(config: cfg.RotatorConfig, kube: KubeClients, identity: str) -> LeaseLock:
    """The leader-election Lease of ``leader_election:`` as a lock held by ``identity`` (the
    daemon's elector, and ``rotate`` handing its request to the leader)."""
    from rotator.daemon.lease import LeaseLock  # noqa: PLC0415 - the Kubernetes client on use

    settings = config.leader_election
    assert settings.namespace is not None, "validated: a Lease names its namespace"
    return LeaseLock(
        kube,
        namespace=settings.namespace,
        name=settings.lease_name,
        identity=identity,
        context=settings.context,
    )
