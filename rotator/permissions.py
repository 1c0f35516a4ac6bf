"""Everything the rotator needs permission for, derived from a configuration in one place.

:func:`derive_permissions` reads a loaded :class:`~rotator.config.RotatorConfig` (presets
expanded: ``key.effective_targets`` / ``effective_consumers`` / ``adopt_source``) and returns
a :class:`PermissionModel`: the Kubernetes RBAC verbs, Vault policy capabilities and StackState
permissions each managed key relies on, each with a one-line reason. Both users read the same
model, so they can never disagree:

- ``rotator doctor`` asks the live systems about every entry (SelfSubjectAccessReview,
  ``sys/capabilities-self``, ``/user/authorization/for``);
- ``rotator rbac`` prints :func:`role_rules` as Role/RoleBinding manifests (or the Helm chart's
  ``rbac.rules`` values) and :func:`render_vault_policy` as a Vault policy.

The verbs are those of the calls the adapters make, not guesses:

=========================================  ===========================================  ========
adapter call                                permission                                   required
=========================================  ===========================================  ========
kubernetes-secret: read_namespaced_secret   get secrets/<name>                           yes
kubernetes-secret: replace_namespaced_...   update secrets/<name>                        yes
kubernetes-secret: create_namespaced_...    create secrets (any name, see below)         no
kubernetes-secret, ``read: list``: LIST     list secrets (every name, see below)         yes
agent preset: the chart's own Secret        get secrets/<chart Secret> (value adopted)   yes
kubernetes-workload by name: read, patch    get, patch <kind>/<name> (apps)              yes
kubernetes-workload by selector: list       list <kind>; get, patch <kind> (any name)    yes
kubernetes-workload ``discover: true``      the same for Deployments, DaemonSets and     yes
                                            StatefulSets; list cronjobs, jobs (batch)    no
synced-secret: read_namespaced_secret       get secrets/<name>                           yes
leader election: read, replace              get, update leases/<name>                    yes
leader election: create                     create leases (any name)                     no
``lock.type: lease`` (rotate runs)          the same Lease entries                       yes
``lock.type: vault``: read, CAS write       read, create, update <mount>/data/<path>     yes
Events in every namespace above             create, patch, list events (core "")        no
vault-kv v2: read_secret_version, POST      read, create, update <mount>/data/<path>     yes
vault-kv v2: metadata read, POST            read, create, update <mount>/metadata/<p>    yes
vault-kv v1: read, PUT                      read, create, update <mount>/<path>          yes
vault session: lookup-self, renew-self      read / update auth/token/*-self              no
rotator doctor: sys/capabilities-self       update sys/capabilities-self                 no
StackState service tokens                   manage-service-tokens                        yes
StackState ingestion API keys               manage-ingestion-api-keys                    yes
=========================================  ===========================================  ========

Decisions:

- A workload consumer writes in both actions: ``restart`` PATCHes the pod template, ``wait``
  PATCHes the push record onto the workload's metadata (the evidence of the switch-over), so
  ``patch`` is required either way.
- Kubernetes authorises a ``create`` before the object exists, so RBAC cannot limit it to a
  resource name: creating a Secret means creating *any* Secret in the namespace. The rotator
  only creates a Secret (or the Lease) that does not exist yet, so ``create`` is optional
  (``required=False``) and names the objects it is for in :attr:`KubernetesPermission.objects`;
  ``rotator doctor`` turns a denied ``create`` into a failure only when one of them is missing.
- ``list`` on Secrets is granted only where the configuration opts into ``read: list`` (on the
  ``kubernetes:`` section or per context): RBAC cannot limit a LIST to names or labels, so it
  exposes every Secret of the namespace. The default ``read: get`` needs no ``list`` at all.
- Vault ``create`` is required: it can be limited to the exact path and the rotator needs it
  whenever the path (or its KV v2 metadata, written first for crash safety) does not exist.
- ``sys/internal/ui/mounts/<mount>``, which the session reads to learn a mount's KV version,
  needs no policy (Vault answers it for any token with access to the mount), and logins are
  unauthenticated, so neither appears here. The token paths are in Vault's ``default`` policy
  and the session copes without them, so they are optional.
- Events (:mod:`rotator.events`): the rotator reports what it did as core ``v1`` Events on the
  Secrets it writes and the workloads it restarts, which live in the namespace of those objects.
  Events are written by a name the recorder generates (``create``), a repeat continues the
  series (``patch`` of ``count``/``lastTimestamp``), and a one-shot run finds the series an
  earlier run started with one field-selected ``list``; none can be limited by name. Only core
  ``v1`` is used (events.k8s.io/v1 is a view of the same objects), so only it is granted. They
  are optional: a denied Event never stops a rotation, and ``rotator doctor`` only warns. The
  leader-election namespace gets none on its own account (the Lease has no Events).
- StackState: the permission names are those of the StackState / SUSE Observability RBAC docs;
  an ingestion key is also verified (``/security/ingestion/authorize``) under
  ``manage-ingestion-api-keys``.

An entry belongs to the managed keys listed in ``keys``; entries with no keys (the leader
election Lease, the Vault token paths) are shared by every key. Entries are deduplicated: one
object needed by several keys or for several reasons appears once, with every key and reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from rotator import config as cfg

#: Kubernetes API group of each resource the rotator touches ("" is the core group).
API_GROUPS: Final[dict[str, str]] = {
    "secrets": "",
    "deployments": "apps",
    "daemonsets": "apps",
    "statefulsets": "apps",
    "jobs": "batch",
    "cronjobs": "batch",
    "leases": "coordination.k8s.io",
}

#: The API groups of Events the rotator writes: core ``v1`` only (:mod:`rotator.events`).
EVENT_API_GROUPS: Final[tuple[str, ...]] = ("",)

#: Resource (plural) of each workload kind a consumer may name.
WORKLOAD_RESOURCES: Final[dict[str, str]] = {
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "StatefulSet": "statefulsets",
}

#: The StackState permission that lets a credential list, create and delete keys of a kind.
STACKSTATE_PERMISSIONS: Final[dict[str, str]] = {
    cfg.KeyKind.SERVICE_TOKEN.value: "manage-service-tokens",
    cfg.KeyKind.INGESTION_API_KEY.value: "manage-ingestion-api-keys",
}

#: Vault capabilities in the order Vault's docs write them.
_CAPABILITY_ORDER: Final = ("create", "read", "update", "patch", "delete", "list", "sudo")

#: Kubernetes verbs in the order kubectl's RBAC docs write them.
_VERB_ORDER: Final = ("get", "list", "watch", "create", "update", "patch", "delete")

VaultCapability = Literal["create", "read", "update", "patch", "delete", "list", "sudo"]


@dataclass(frozen=True)
class KubernetesPermission:
    """One RBAC verb on one resource (or every resource of a type) in one namespace."""

    #: Kubeconfig context; None: ``kubernetes.context``, else the current context / in-cluster.
    context: str | None
    namespace: str
    #: API group: "" (core), "apps", "batch", "coordination.k8s.io", "events.k8s.io".
    group: str
    #: Resource type, plural: secrets, deployments, leases, ...
    resource: str
    verb: str
    #: Resource name; None: every object of the type in the namespace.
    name: str | None
    #: Why the rotator needs it (one line; reasons of merged entries joined by "; ").
    why: str
    #: False: only sometimes needed (see :attr:`objects`) or purely informational; doctor warns.
    required: bool = True
    #: Managed keys that need it; empty: every key (leader election).
    keys: tuple[str, ...] = ()
    #: For a name-less ``create``: the objects it is needed for (only when they do not exist).
    objects: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str | None, str, str, str, str, str | None]:
        """What makes two entries the same permission (reason and keys aside)."""
        return (self.context, self.namespace, self.group, self.resource, self.verb, self.name)

    @property
    def qualified_resource(self) -> str:
        """``deployments.apps``, ``secrets`` — the way kubectl names a resource type."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def describe(self) -> str:
        """``patch deployments.apps/x in namespace ns`` (context added when one is named)."""
        what = self.qualified_resource + (f"/{self.name}" if self.name else "")
        where = f" in namespace {self.namespace}"
        if self.context:
            where += f" (context {self.context})"
        return f"{self.verb} {what}{where}"


@dataclass(frozen=True)
class VaultPermission:
    """One capability on one Vault path (relative to the configured namespace)."""

    path: str
    capability: VaultCapability
    why: str
    required: bool = True
    #: Managed keys that need it; empty: every key using Vault (token self-service).
    keys: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, str]:
        """What makes two entries the same permission."""
        return (self.path, self.capability)


@dataclass(frozen=True)
class StackStatePermission:
    """A StackState permission the rotator's own credential needs."""

    permission: str
    #: The key kind it manages.
    kind: str
    why: str
    keys: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, str]:
        """What makes two entries the same permission."""
        return (self.permission, self.kind)


@dataclass(frozen=True)
class PermissionModel:
    """Every permission a configuration needs, per system; see the module docstring."""

    kubernetes: tuple[KubernetesPermission, ...] = ()
    vault: tuple[VaultPermission, ...] = ()
    stackstate: tuple[StackStatePermission, ...] = ()
    #: The Vault Enterprise namespace the Vault paths are relative to (None: root).
    vault_namespace: str | None = None

    def for_key(self, name: str) -> PermissionModel:
        """The entries key ``name`` relies on, shared ones (no keys) included."""

        def mine(keys: tuple[str, ...]) -> bool:
            return not keys or name in keys

        return PermissionModel(
            kubernetes=tuple(p for p in self.kubernetes if mine(p.keys)),
            vault=tuple(p for p in self.vault if mine(p.keys)),
            stackstate=tuple(p for p in self.stackstate if mine(p.keys)),
            vault_namespace=self.vault_namespace,
        )

    def kubernetes_scopes(self) -> dict[tuple[str | None, str], list[KubernetesPermission]]:
        """Kubernetes entries per (context, namespace): one Role each, in first-seen order."""
        scopes: dict[tuple[str | None, str], list[KubernetesPermission]] = {}
        for permission in self.kubernetes:
            scopes.setdefault((permission.context, permission.namespace), []).append(permission)
        return scopes

    def vault_paths(self) -> dict[str, list[VaultPermission]]:
        """Vault entries per path, in first-seen order."""
        paths: dict[str, list[VaultPermission]] = {}
        for permission in self.vault:
            paths.setdefault(permission.path, []).append(permission)
        return paths


# -- derivation -----------------------------------------------------------------------------------


class _Collector:
    """Accumulates entries, merging duplicates (keys and reasons united, required if any is)."""

    def __init__(self) -> None:
        self.kubernetes: dict[object, KubernetesPermission] = {}
        self.vault: dict[object, VaultPermission] = {}
        self.stackstate: dict[object, StackStatePermission] = {}

    def add_kubernetes(self, permission: KubernetesPermission) -> None:
        found = self.kubernetes.get(permission.identity)
        if found is None:
            self.kubernetes[permission.identity] = permission
            return
        self.kubernetes[permission.identity] = replace(
            found,
            why=_join_reasons(found.why, permission.why),
            required=found.required or permission.required,
            keys=_union(found.keys, permission.keys),
            objects=_union(found.objects, permission.objects),
        )

    def add_vault(self, permission: VaultPermission) -> None:
        found = self.vault.get(permission.identity)
        if found is None:
            self.vault[permission.identity] = permission
            return
        self.vault[permission.identity] = replace(
            found,
            why=_join_reasons(found.why, permission.why),
            required=found.required or permission.required,
            keys=_union(found.keys, permission.keys),
        )

    def add_stackstate(self, permission: StackStatePermission) -> None:
        found = self.stackstate.get(permission.identity)
        if found is None:
            self.stackstate[permission.identity] = permission
            return
        self.stackstate[permission.identity] = replace(
            found, keys=_union(found.keys, permission.keys)
        )


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _join_reasons(first: str, second: str) -> str:
    parts = first.split("; ")
    return first if second in parts else f"{first}; {second}"


def derive_permissions(config: cfg.RotatorConfig) -> PermissionModel:
    """Every permission ``config`` needs (see the module docstring for the table)."""
    out = _Collector()
    default_context = config.kubernetes.context
    uses_vault = False
    for key in config.keys:
        names = (key.name,)
        _stackstate_permissions(out, key, names)
        source = key.adopt_source
        if source is not None:
            out.add_kubernetes(
                KubernetesPermission(
                    context=source.context or default_context,
                    namespace=source.namespace,
                    group="",
                    resource="secrets",
                    verb="get",
                    name=source.name,
                    why="adopt the value in use from the chart's own Secret (migration)",
                    keys=names,
                )
            )
        for target in key.effective_targets:
            if isinstance(target, cfg.KubernetesSecretTarget):
                listed = config.kubernetes.read_mode(target.context) == "list"
                _secret_target(out, target, target.context or default_context, names, listed=listed)
            elif isinstance(target, cfg.VaultKvTarget):
                uses_vault = True
                _vault_target(out, target, names)
        for consumer in key.effective_consumers:
            if isinstance(consumer, cfg.KubernetesWorkloadConsumer):
                _workload_consumer(out, consumer, consumer.context or default_context, names)
            elif isinstance(consumer, cfg.SyncedSecretConsumer):
                out.add_kubernetes(
                    KubernetesPermission(
                        context=consumer.context or default_context,
                        namespace=consumer.namespace,
                        group="",
                        resource="secrets",
                        verb="get",
                        name=consumer.name,
                        why="compare the synced value's fingerprint (synced-secret consumer)",
                        keys=names,
                    )
                )
    _event_permissions(out)
    lock = config.lock.effective_type(config.leader_election)
    if lock == "vault":
        uses_vault = True
        _vault_lock(out, config.lock)
    if uses_vault:
        _vault_token_permissions(out)
    if config.leader_election.enabled or lock == "lease":
        _leader_election(out, config.leader_election, default_context)
    return PermissionModel(
        kubernetes=tuple(out.kubernetes.values()),
        vault=tuple(out.vault.values()),
        stackstate=tuple(out.stackstate.values()),
        vault_namespace=config.vault.namespace if config.vault is not None else None,
    )


def _stackstate_permissions(out: _Collector, key: cfg.ManagedKey, names: tuple[str, ...]) -> None:
    kind = key.kind.value
    if key.kind is cfg.KeyKind.SERVICE_TOKEN:
        why = "list, create and delete service tokens (a new token's id is found by listing)"
    else:
        why = "list, create, verify and delete ingestion API keys"
    out.add_stackstate(StackStatePermission(STACKSTATE_PERMISSIONS[kind], kind, why, names))


def _secret_target(
    out: _Collector,
    target: cfg.KubernetesSecretTarget,
    context: str | None,
    names: tuple[str, ...],
    *,
    listed: bool = False,
) -> None:
    def entry(
        verb: str, name: str | None, why: str, *, objects: tuple[str, ...] = ()
    ) -> KubernetesPermission:
        return KubernetesPermission(
            context=context,
            namespace=target.namespace,
            group="",
            resource="secrets",
            verb=verb,
            name=name,
            why=why,
            required=not objects,
            keys=names,
            objects=objects,
        )

    out.add_kubernetes(entry("get", target.name, "read the key value and its rotation metadata"))
    if listed:
        out.add_kubernetes(
            entry(
                "list",
                None,
                "read the rotator's Secrets with one label-selected LIST per namespace "
                "(kubernetes read: list; exposes every Secret of the namespace)",
            )
        )
    out.add_kubernetes(
        entry(
            "update", target.name, "write the new value and metadata (replace with resourceVersion)"
        )
    )
    out.add_kubernetes(
        entry(
            "create",
            None,
            "create the Secret when it does not exist yet (RBAC cannot limit create to a name)",
            objects=(target.name,),
        )
    )


def _workload_consumer(
    out: _Collector,
    consumer: cfg.KubernetesWorkloadConsumer,
    context: str | None,
    names: tuple[str, ...],
) -> None:
    # getattr: `discover` is new in the consumer's model (code written before it must not break).
    discover = bool(getattr(consumer, "discover", False))
    kinds = [consumer.kind] if consumer.kind is not None else list(WORKLOAD_RESOURCES)
    if consumer.action == "restart":
        patch_why = "restart it (kubectl rollout restart) and record the push on it"
    else:
        patch_why = "record the push on it (Reloader/VSO/ESO restart it)"

    def add(verb: str, why: str, *, resource: str, name: str | None, required: bool = True) -> None:
        out.add_kubernetes(
            KubernetesPermission(
                context=context,
                namespace=consumer.namespace,
                group=API_GROUPS[resource],
                resource=resource,
                verb=verb,
                name=name,
                why=why,
                required=required,
                keys=names,
            )
        )

    for kind in kinds:
        resource = WORKLOAD_RESOURCES[kind]
        if consumer.name is not None:
            add("get", "observe the rollout", resource=resource, name=consumer.name)
            add("patch", patch_why, resource=resource, name=consumer.name)
            continue
        if discover:
            found = "discovered"
            add("list", f"discover the {kind}s reading the key", resource=resource, name=None)
        else:
            found = "matching"
            selector = ",".join(f"{k}={v}" for k, v in sorted((consumer.selector or {}).items()))
            add("list", f"find the {kind}s matching {selector}", resource=resource, name=None)
        add("get", f"observe the rollout of every {found} {kind}", resource=resource, name=None)
        add("patch", f"{patch_why} (every {found} {kind})", resource=resource, name=None)
    if discover:
        for resource in ("cronjobs", "jobs"):
            add(
                "list",
                "report CronJobs and Jobs reading the key (informational, never restarted)",
                resource=resource,
                name=None,
                required=False,
            )


def _event_permissions(out: _Collector) -> None:
    """Optional Event writes in every (context, namespace) the entries so far work in."""
    scopes: dict[tuple[str | None, str], tuple[str, ...]] = {}
    for permission in out.kubernetes.values():
        scope = (permission.context, permission.namespace)
        scopes[scope] = _union(scopes.get(scope, ()), permission.keys)
    for (context, namespace), keys in scopes.items():
        for group in EVENT_API_GROUPS:
            for verb, why in (
                ("create", "report what it did as Kubernetes Events (optional)"),
                ("patch", "count a repeated Event in its series (optional)"),
                ("list", "find the Event series an earlier run started (optional)"),
            ):
                out.add_kubernetes(
                    KubernetesPermission(
                        context=context,
                        namespace=namespace,
                        group=group,
                        resource="events",
                        verb=verb,
                        name=None,
                        why=why,
                        required=False,
                        keys=keys,
                    )
                )


def _leader_election(
    out: _Collector, settings: cfg.LeaderElectionSettings, default_context: str | None
) -> None:
    namespace = settings.namespace
    assert namespace is not None  # the model requires it when enabled
    context = settings.context or default_context
    lease = settings.lease_name

    def entry(
        verb: str, name: str | None, why: str, *, objects: tuple[str, ...] = ()
    ) -> KubernetesPermission:
        return KubernetesPermission(
            context=context,
            namespace=namespace,
            group=API_GROUPS["leases"],
            resource="leases",
            verb=verb,
            name=name,
            why=why,
            required=not objects,
            objects=objects,
        )

    out.add_kubernetes(entry("get", lease, "read the leader-election Lease"))
    out.add_kubernetes(entry("update", lease, "renew or take over the leader-election Lease"))
    out.add_kubernetes(
        entry(
            "create",
            None,
            "create the leader-election Lease the first time (RBAC cannot limit create to a name)",
            objects=(lease,),
        )
    )


def _vault_target(out: _Collector, target: cfg.VaultKvTarget, names: tuple[str, ...]) -> None:
    def add(path: str, capability: VaultCapability, why: str) -> None:
        out.add_vault(VaultPermission(path, capability, why, keys=names))

    if target.kv_version == 2:
        data = f"{target.mount}/data/{target.path}"
        metadata = f"{target.mount}/metadata/{target.path}"
        add(data, "read", "read the value and its version (KV v2)")
        add(data, "create", "write the first version of a new path (KV v2)")
        add(data, "update", "write new versions with check-and-set (KV v2)")
        add(metadata, "read", "read the rotation metadata (custom_metadata, KV v2)")
        add(metadata, "create", "write the rotation metadata of a new path (KV v2)")
        add(metadata, "update", "write the rotation metadata (custom_metadata, KV v2)")
        return
    path = f"{target.mount}/{target.path}"
    add(path, "read", "read the value and its metadata field (KV v1)")
    add(path, "create", "write a new path (KV v1)")
    add(path, "update", "write the value and its metadata field (KV v1)")


def _vault_lock(out: _Collector, lock: cfg.LockSettings) -> None:
    """The run lock entry in Vault KV v2 (``lock.type: vault``), shared by every key."""
    path = f"{lock.mount}/data/{lock.path}"
    entries: tuple[tuple[VaultCapability, str], ...] = (
        ("read", "read the run lock entry (lock.type vault)"),
        ("create", "write the run lock entry the first time (lock.type vault)"),
        ("update", "take, renew and release the run lock with check-and-set (lock.type vault)"),
    )
    for capability, why in entries:
        out.add_vault(VaultPermission(path, capability, why))


#: Token self-service paths the session uses, all in Vault's ``default`` policy.
_TOKEN_PATHS: Final[tuple[tuple[str, VaultCapability, str], ...]] = (
    ("auth/token/lookup-self", "read", "learn the token's TTL (Vault's default policy)"),
    ("auth/token/renew-self", "update", "renew the token before it expires (default policy)"),
    (
        "sys/capabilities-self",
        "update",
        "let rotator doctor check these capabilities (default policy)",
    ),
)


def _vault_token_permissions(out: _Collector) -> None:
    for path, capability, why in _TOKEN_PATHS:
        out.add_vault(VaultPermission(path, capability, why, required=False))


# -- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRule:
    """One rule of a Kubernetes Role (``rules[]``): verbs on resources, maybe by name."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    #: The reasons behind the rule, for a comment above it.
    why: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, list[str]]:
        """The rule as it appears in a Role manifest (``resourceNames`` only when given)."""
        rule = {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        return rule


def _ordered(items: Iterable[str], order: Sequence[str]) -> tuple[str, ...]:
    rank = {item: index for index, item in enumerate(order)}
    return tuple(sorted(set(items), key=lambda item: (rank.get(item, len(order)), item)))


def role_rules(
    permissions: Iterable[KubernetesPermission], *, include_optional: bool = True
) -> list[RoleRule]:
    """The least-privilege rules granting ``permissions`` (of one context and namespace).

    Per resource: one rule with the verbs needed on every object, then one rule per set of
    object names sharing the same further verbs (``resourceNames``). Optional entries are left
    out with ``include_optional=False``.
    """
    by_resource: dict[tuple[str, str], list[KubernetesPermission]] = {}
    for permission in permissions:
        if permission.required or include_optional:
            key = (permission.group, permission.resource)
            by_resource.setdefault(key, []).append(permission)
    rules: list[RoleRule] = []
    for (group, resource), entries in by_resource.items():
        everywhere = {p.verb for p in entries if p.name is None}
        if everywhere:
            reasons = tuple(dict.fromkeys(p.why for p in entries if p.name is None))
            rules.append(
                RoleRule((group,), (resource,), _ordered(everywhere, _VERB_ORDER), (), reasons)
            )
        named: dict[str, set[str]] = defaultdict(set)
        named_reasons: dict[str, list[str]] = defaultdict(list)
        for permission in entries:
            if permission.name is not None and permission.verb not in everywhere:
                named[permission.name].add(permission.verb)
                named_reasons[permission.name].append(permission.why)
        grouped: dict[tuple[str, ...], list[str]] = {}
        for name, verb_set in named.items():
            grouped.setdefault(_ordered(verb_set, _VERB_ORDER), []).append(name)
        for verbs, object_names in grouped.items():
            reasons = tuple(dict.fromkeys(r for n in object_names for r in named_reasons[n]))
            rules.append(
                RoleRule((group,), (resource,), verbs, tuple(sorted(object_names)), reasons)
            )
    return rules


def _hcl_string(text: str) -> str:
    """A double-quoted HCL string (JSON escaping is valid HCL)."""
    return json.dumps(text)


def render_vault_policy(
    model: PermissionModel, *, include_optional: bool = True, title: str | None = None
) -> str:
    """The Vault policy (HCL) granting the model's Vault capabilities, one block per path.

    Each block is preceded by comments naming the keys and reasons. Optional entries (the
    token self-service paths of the ``default`` policy) are included unless
    ``include_optional=False``. Paths are relative to :attr:`PermissionModel.vault_namespace`:
    write the policy into that namespace.
    """
    lines = [f"# {title or 'stackstate-key-rotator: least-privilege Vault policy'}"]
    if model.vault_namespace:
        lines.append(f"# Paths are relative to Vault namespace {model.vault_namespace}.")
    for path, entries in model.vault_paths().items():
        chosen = [p for p in entries if p.required or include_optional]
        if not chosen:
            continue
        lines.append("")
        keys = tuple(dict.fromkeys(k for p in chosen for k in p.keys))
        if keys:
            lines.append(f"# keys: {', '.join(keys)}")
        for permission in chosen:
            optional = "" if permission.required else " (optional)"
            lines.append(f"# {permission.capability}: {permission.why}{optional}")
        capabilities = _ordered((p.capability for p in chosen), _CAPABILITY_ORDER)
        lines.append(f"path {_hcl_string(path)} {{")
        lines.append(f"  capabilities = [{', '.join(_hcl_string(c) for c in capabilities)}]")
        lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = [
    "API_GROUPS",
    "EVENT_API_GROUPS",
    "STACKSTATE_PERMISSIONS",
    "WORKLOAD_RESOURCES",
    "KubernetesPermission",
    "PermissionModel",
    "RoleRule",
    "StackStatePermission",
    "VaultCapability",
    "VaultPermission",
    "derive_permissions",
    "render_vault_policy",
    "role_rules",
]
