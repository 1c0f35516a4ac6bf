"""Managed keys: one entry under ``keys:``, a logical credential backed over time by a sequence
of StackState keys.

A :class:`ManagedKey` knows its kind's rules (service tokens carry roles, ingestion keys do not),
expands its preset once when it is validated (``effective_targets``, ``effective_consumers``,
``adopt_source``, ``helm_values``, ``helm_hint``) and exposes its effective policy (``policy``,
resolved by :class:`~rotator.config.RotatorConfig` against its ``defaults:``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.delivery import Consumer, KubernetesSecretTarget, Target
from rotator.config.policy import POLICY_FIELDS, Defaults, KeyPolicy, Schedule, resolve_policy
from rotator.config.presets import Expansion, Preset, expand_preset
from rotator.config.types import (
    CronExpression,
    Duration,
    KeyName,
    NonEmptyStr,
    PositiveDuration,
    RotateBefore,
    Validity,
)
from rotator.keytypes import KeyKind


class ManagedKey(ConfigModel):
    """One logical credential, backed over time by a sequence of StackState keys."""

    name: KeyName
    """Managed key name; StackState keys are named <name>-<UTC timestamp>."""
    kind: KeyKind
    roles: list[NonEmptyStr] | None = None
    """Roles of the service token (service-token only, required)."""
    description: str | None = None
    """Description stored with ingestion API keys (plus a managed-by marker)."""
    dedicated_subject: NonEmptyStr | None = None
    """Dedicated subject of the service token (service-token only)."""
    adopt_key_id: Annotated[int, Field(gt=0)] | None = None
    """Id of the hand-made key the targets hold today; revoked once replaced."""
    preset: Preset | None = None
    """Shorthand that expands into the targets and consumers of a well-known consumer."""
    targets: list[Target] = Field(default_factory=list)
    """Where the value is written."""
    consumers: list[Consumer] = Field(default_factory=list)
    """What reads the value and must switch over."""
    validity: Validity | None = None
    """Override of defaults.validity."""
    rotate_before: RotateBefore | None = None
    """Override of defaults.rotate_before."""
    grace_period: Duration | None = None
    """Override of defaults.grace_period."""
    switch_timeout: PositiveDuration | None = None
    """Override of defaults.switch_timeout."""
    orphan_min_age: PositiveDuration | None = None
    """Override of defaults.orphan_min_age."""
    schedule: Schedule | None = None
    """Override of defaults.schedule."""
    windows: list[CronExpression] | None = None
    """Override of defaults.windows ([] removes inherited windows)."""
    alert_before: Duration | None = None
    """Override of defaults.alert_before."""
    suspend: bool = False
    """Keep the key observed and reported but never act on it: no create, push, restart, revoke
    or sweep of its keys, by the daemon or by rotate (--force and --emergency included).
    status, rotate --dry-run and check-config show it as suspended; its expiry alerts still fire
    and the gauge rotator_key_suspended is 1. For a leak investigation, a migration done by
    hand, or a consumer that must not be restarted for a while; remove it to resume."""

    _policy: KeyPolicy | None = PrivateAttr(default=None)
    _expansion: Expansion | None = PrivateAttr(default=None)
    _effective_targets: tuple[Target, ...] = PrivateAttr(default=())
    _effective_consumers: tuple[Consumer, ...] = PrivateAttr(default=())

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[str] | None) -> list[str] | None:
        return None if roles is None else list(dict.fromkeys(roles))

    @model_validator(mode="after")
    def _kind_rules(self) -> ManagedKey:
        problems = []
        if self.kind is KeyKind.SERVICE_TOKEN and not self.roles:
            problems.append(
                (
                    "roles",
                    "a service-token needs roles, e.g. [stackstate-ingest-telemetry], or it "
                    "cannot ingest anything",
                )
            )
        if self.kind is KeyKind.INGESTION_API_KEY:
            if self.roles is not None:
                problems.append(
                    (
                        "roles",
                        "ingestion API keys carry no roles (only service tokens do): remove "
                        "roles or use kind: service-token",
                    )
                )
            if self.dedicated_subject is not None:
                problems.append(("dedicated_subject", "only service tokens have a subject"))
        if not self.targets and self.preset is None:
            problems.append(
                ("targets", "give at least one target or a preset, or the key is never delivered")
            )
        if problems:
            raise_problems(problems)
        return self

    @model_validator(mode="after")
    def _expand_preset(self) -> ManagedKey:
        """Expand the preset here, once: every reader of the key's targets and consumers (the
        configuration's checks, wiring, doctor, rbac, check-config) uses the properties below."""
        self._expand()
        return self

    def _expand(self) -> Expansion:
        expansion = expand_preset(self.preset)
        self._effective_targets = (*expansion.targets, *self.targets)
        self._effective_consumers = (*expansion.consumers, *self.consumers)
        self._expansion = expansion
        return expansion

    def _expanded(self) -> Expansion:
        # Only a key built without validation (model_construct) has not been expanded yet.
        return self._expansion if self._expansion is not None else self._expand()

    @property
    def effective_targets(self) -> tuple[Target, ...]:
        """Where the value is written: the preset's targets, then the key's own."""
        self._expanded()
        return self._effective_targets

    @property
    def effective_consumers(self) -> tuple[Consumer, ...]:
        """What must switch over: the preset's consumers, then the key's own."""
        self._expanded()
        return self._effective_consumers

    @property
    def adopt_source(self) -> KubernetesSecretTarget | None:
        """The chart's own Secret the preset migrates from (its value is adopted while the
        preset's Secret is still empty); None without such a preset."""
        return self._expanded().adopt_source

    @property
    def helm_values(self) -> tuple[tuple[str, str], ...]:
        """The Helm values (``--set`` paths and values) that point the preset's chart at the
        Secret the rotator writes; empty when there is nothing to set."""
        return self._expanded().helm_values

    @property
    def helm_hint(self) -> str | None:
        """One sentence: the ``helm upgrade`` that sets :attr:`helm_values`; None without."""
        return self._expanded().helm_hint

    @property
    def policy(self) -> KeyPolicy:
        """The effective policy (defaults merged with this key's overrides).

        Keys loaded as part of a :class:`RotatorConfig` carry the policy resolved against its
        ``defaults:``; a key validated on its own falls back to the built-in defaults.
        """
        if self._policy is None:
            return resolve_policy(Defaults(), self)
        return self._policy

    def overrides(self) -> frozenset[str]:
        """Names of the policy fields this key sets itself."""
        return frozenset(name for name in POLICY_FIELDS if getattr(self, name) is not None)
