"""The whole configuration file (:class:`RotatorConfig`) and the checks that span its sections.

Each section validates itself; what only the whole file can tell is checked here, each problem
at its own path: duplicate managed key names, every key's policy against ``defaults:`` (the
resolved :class:`~rotator.config.KeyPolicy` is attached to the key), vault-kv targets without a
``vault:`` section, two targets (of any keys, presets included) writing one data key, and
``discover: true`` consumers without a Secret to discover the readers of.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.connections import KubernetesSettings, StackStateSettings, VaultSettings
from rotator.config.delivery import (
    FileTarget,
    KubernetesSecretTarget,
    KubernetesWorkloadConsumer,
    Target,
    VaultKvTarget,
)
from rotator.config.hooks import AlertHook
from rotator.config.keys import ManagedKey
from rotator.config.policy import Defaults, policy_problems, resolve_policy
from rotator.config.service import (
    HistorySettings,
    LeaderElectionSettings,
    LockSettings,
    ServerSettings,
    Workers,
)


class RotatorConfig(ConfigModel):
    """The whole configuration file."""

    stackstate: StackStateSettings
    """How to reach and authenticate to StackState."""
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    """Default Kubernetes connection (in-cluster when empty)."""
    vault: VaultSettings | None = None
    """Vault connection; needed by vault-kv targets."""
    defaults: Defaults = Field(default_factory=Defaults)
    """Policy every managed key inherits."""
    keys: list[ManagedKey]
    """The managed keys."""
    alerts: list[AlertHook] = Field(default_factory=list)
    """Where alerts go."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The daemon's HTTP endpoints."""
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    """Leader election between replicas."""
    history: HistorySettings = Field(default_factory=HistorySettings)
    """Audit history of actions and outcomes (rotator history)."""
    lock: LockSettings = Field(default_factory=LockSettings)
    """The shared lock of writing runs (lease, vault or file)."""
    workers: Workers = 8
    """How many target reads (Secret GETs, Vault reads) and consumer look-ups of one run are in
    flight at once, from 1 to 64; the Kubernetes and Vault connection pools are sized to it."""
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True)
    """The file this configuration was loaded from (set by load_config, not by users)."""

    @model_validator(mode="before")
    @classmethod
    def _source_from_context(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if "source" in data:
            raise_problems([("source", "unknown field")])  # not a user setting
        source = info.context.get("source") if isinstance(info.context, dict) else None
        return {**data, "source": source} if source is not None else data

    @field_validator("lock", mode="after")
    @classmethod
    def _lock_needs_its_backend(cls, lock: LockSettings, info: ValidationInfo) -> LockSettings:
        election = info.data.get("leader_election")
        if (
            lock.type == "lease"
            and isinstance(election, LeaderElectionSettings)
            and election.namespace is None
        ):
            raise_problems(
                [("type", "a lease lock uses the leader_election Lease: set its namespace")]
            )
        # `vault` is absent from info.data when its own validation failed: do not pile on.
        if lock.type == "vault" and "vault" in info.data and info.data["vault"] is None:
            raise_problems([("type", "a vault lock needs a vault: section (url and auth)")])
        return lock

    @field_validator("keys", mode="after")
    @classmethod
    def _resolve_and_check_keys(
        cls, keys: list[ManagedKey], info: ValidationInfo
    ) -> list[ManagedKey]:
        problems: list[tuple[str, str]] = []
        seen_names: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key.name in seen_names:
                problems.append(
                    (
                        f"[{index}].name",
                        f"duplicate managed key name {key.name!r} "
                        f"(also keys[{seen_names[key.name]}])",
                    )
                )
            else:
                seen_names[key.name] = index

        defaults = info.data.get("defaults")
        if isinstance(defaults, Defaults):
            # `defaults` passed its own checks, so any problem here comes from an override.
            for index, key in enumerate(keys):
                policy = resolve_policy(defaults, key)
                key._policy = policy  # the config attaches what it resolved to each key
                overridden = key.overrides()
                for fields, why in policy_problems(policy):
                    owned = [name for name in fields if name in overridden]
                    inherited = [name for name in fields if name not in overridden]
                    note = f" ({', '.join(inherited)} from defaults)" if inherited else ""
                    where = owned[0] if owned else "validity"  # a percentage of validity
                    problems.append((f"[{index}].{where}", why + note))

        # `vault` is absent from info.data when its own validation failed: do not pile on.
        if "vault" in info.data and info.data["vault"] is None:
            for index, key in enumerate(keys):
                for t_index, target in enumerate(key.targets):
                    if isinstance(target, VaultKvTarget):
                        problems.append(
                            (
                                f"[{index}].targets[{t_index}]",
                                "a vault-kv target needs a vault: section (url and auth)",
                            )
                        )

        kubernetes = info.data.get("kubernetes")
        default_context = ""
        if isinstance(kubernetes, KubernetesSettings) and kubernetes.context:
            default_context = kubernetes.context
        problems.extend(_target_collisions(keys, default_context))
        problems.extend(_discovery_problems(keys, default_context))
        if problems:
            raise_problems(problems)
        return keys

    def key(self, name: str) -> ManagedKey:
        """The managed key called ``name`` (:class:`KeyError` when there is none)."""
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Checks across keys
# --------------------------------------------------------------------------------------------


def _discovery_problems(keys: list[ManagedKey], default_context: str) -> list[tuple[str, str]]:
    """A ``discover: true`` consumer needs a kubernetes-secret target in its namespace: the
    readers of that Secret are what it finds."""
    problems = []
    for index, key in enumerate(keys):
        targets = key.effective_targets
        for c_index, consumer in enumerate(key.consumers):
            if not isinstance(consumer, KubernetesWorkloadConsumer) or not consumer.discover:
                continue
            context = consumer.context or default_context
            if not any(
                isinstance(t, KubernetesSecretTarget)
                and t.namespace == consumer.namespace
                and (t.context or default_context) == context
                for t in targets
            ):
                problems.append(
                    (
                        f"[{index}].consumers[{c_index}].discover",
                        "finds the readers of this key's kubernetes-secret target in namespace "
                        f"{consumer.namespace}, and the key has none there",
                    )
                )
    return problems


def _target_collisions(keys: list[ManagedKey], default_context: str) -> list[tuple[str, str]]:
    """Two targets (of any keys) writing the same data key of one Secret, Vault path or file."""
    problems = []
    written: dict[tuple[str, ...], list[tuple[str, str, str | None, str]]] = {}
    for index, key in enumerate(keys):
        # The preset's targets come first: its Secret may collide with a target's too.
        from_preset = len(key.effective_targets) - len(key.targets)
        for n, target in enumerate(key.effective_targets):
            path = (
                f"[{index}].preset" if n < from_preset else f"[{index}].targets[{n - from_preset}]"
            )
            where, data_key, what = _target_location(target, default_context)
            fmt = target.format if isinstance(target, FileTarget) else None
            here = f"keys{path}"
            for other_key, other_here, other_fmt, other_what in written.get(where, []):
                if fmt != other_fmt:
                    problems.append(
                        (
                            path,
                            f"{what} is also written as format {other_fmt} by {other_here}",
                        )
                    )
                elif _overlaps(data_key, other_key):
                    problems.append(
                        (
                            path,
                            f"{what} is also written by {other_here}"
                            + ("" if other_what == what else f" ({other_what})")
                            + "; two targets must not write the same data key",
                        )
                    )
            written.setdefault(where, []).append((data_key, here, fmt, what))
    return problems


def _target_location(target: Target, default_context: str) -> tuple[tuple[str, ...], str, str]:
    """(where, data key, readable description) of what a target writes."""
    if isinstance(target, KubernetesSecretTarget):
        context = target.context or default_context
        where = ("kubernetes-secret", context, target.namespace, target.name)
        return where, target.key, f"key {target.key} of Secret {target.namespace}/{target.name}"
    if isinstance(target, VaultKvTarget):
        return (
            ("vault-kv", target.mount, target.path),
            target.key,
            f"key {target.key} of Vault {target.mount}/{target.path}",
        )
    field = target.field or ""
    what = f"field {field} of file {target.path}" if field else f"file {target.path}"
    # The real path: two paths reaching one file through a symlinked directory are one target.
    return ("file", os.path.realpath(target.path)), field, what


def _overlaps(first: str, second: str) -> bool:
    """Two data keys of one location collide: equal, whole-file (""), or nested YAML paths."""
    if not first or not second or first == second:
        return True
    return first.startswith(second + ".") or second.startswith(first + ".")
