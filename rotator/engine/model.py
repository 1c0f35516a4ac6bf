"""The engine's plain data: what a managed key is, what was observed, what is planned and done.

Everything here is a frozen dataclass without behaviour beyond small derived properties, so a
plan can be printed (dry-run), serialised (``--output json``) and compared in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from rotator.consumers.base import Consumer, Reader, Resolution, SwitchState
from rotator.engine.policy import Windows
from rotator.engine.ports import ApiKey, KeyKind, VerifyResult
from rotator.errors import Category, RotatorError
from rotator.targets.base import KeyMetadata, Target, TargetState

#: ``suspended``: the key's configuration says ``suspend: true``; it is observed, never acted on.
Decision = Literal[
    "ok", "bootstrap", "rotate", "repair", "switch", "revoke", "blocked", "suspended"
]
ActionType = Literal["create", "verify", "push", "restart", "await", "revoke", "sweep"]
Outcome = Literal["planned", "unchanged", "rotated", "waiting", "revoked", "failed"]
#: The step a failure happened in (``failure.step`` of the JSON output); ``preflight`` is
#: what stops a plan before anything is written (a foreign owner, a consumer that cannot switch).
Step = Literal[
    "preflight", "observe", "create", "verify", "push", "restart", "switch", "revoke", "sweep"
]


@dataclass(frozen=True)
class Failure:
    """Why a managed key is not healthy, as data: metrics labels, alert types and the exit code
    are derived from ``step`` and ``category``, never from ``message``."""

    step: Step
    category: Category
    #: The exception class behind it (``TargetForbidden``), or a short name of the condition.
    error_type: str
    #: One line for people (never a key value).
    message: str

    @classmethod
    def of(cls, step: Step, error: RotatorError, message: str | None = None) -> Failure:
        """A failure of ``step`` caused by ``error`` (its class gives the category)."""
        return cls(step, error.category, type(error).__name__, message or error.message)

    def to_dict(self) -> dict[str, str]:
        """The ``failure`` object of the JSON output."""
        return {
            "step": self.step,
            "category": self.category,
            "error_type": self.error_type,
            "message": self.message,
        }


@dataclass(frozen=True)
class KeySpec:
    """One managed key, resolved from the configuration: policy plus its target adapters.

    When to look at it is not the engine's business: the daemon keeps each key's schedule
    beside its spec (:class:`rotator.daemon.scheduling.Schedule`)."""

    name: str
    kind: KeyKind
    roles: tuple[str, ...] | None
    description: str | None
    dedicated_subject: str | None
    validity: timedelta
    rotate_before: timedelta
    grace_period: timedelta
    switch_timeout: timedelta
    orphan_min_age: timedelta
    windows: Windows
    targets: tuple[Target, ...]
    adopt_key_id: int | None = None
    consumers: tuple[Consumer, ...] = ()
    #: Raise key_expiring when the key in use expires within this and was not replaced.
    alert_before: timedelta = timedelta(days=7)
    #: Read-only source of the value in use while no target holds one (a preset's chart
    #: Secret): adopted by copying, so moving to the rotator's own Secret has no gap.
    adopt_from: Target | None = None
    #: Helm values (``--set`` path, value) that point a chart at the key's Secret.
    helm_values: tuple[tuple[str, str], ...] = ()
    #: ``suspend: true``: observed and reported, never acted on (the plan is ``suspended``).
    suspended: bool = False

    @property
    def window_margin(self) -> timedelta:
        """How long a rotation may need end to end; waiting for a window must leave this."""
        return self.switch_timeout + self.grace_period + timedelta(hours=1)


@dataclass(frozen=True)
class TargetObservation:
    """One target as observed: its state, or the error that prevented reading it."""

    target: Target
    state: TargetState | None
    error: str | None = None
    #: The error class when unreadable (for the report's ``failure``).
    error_type: str | None = None
    category: Category | None = None

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the value held (None when empty or unreadable)."""
        return None if self.state is None else self.state.fingerprint


@dataclass(frozen=True)
class ConsumerObservation:
    """One consumer as observed for the value the targets hold: its states, or a read error."""

    consumer: Consumer
    states: tuple[SwitchState, ...] = ()
    error: str | None = None
    #: The error class and category behind ``error``.
    error_type: str | None = None
    category: Category | None = None


@dataclass(frozen=True)
class ObservedKey:
    """Everything the planner needs to decide about one managed key."""

    spec: KeySpec
    targets: tuple[TargetObservation, ...]
    #: Every key of this kind that StackState listed, by id (None when listing failed).
    keys_by_id: Mapping[int, ApiKey] | None
    #: Verification of held values the listing could not vouch for, by fingerprint.
    verdicts: Mapping[str, VerifyResult] = field(default_factory=dict)
    list_error: str | None = None
    #: The error class and category behind ``list_error``.
    list_error_type: str | None = None
    list_category: Category = "retry"
    #: Consumers observed for the held value while its switch-over is unfinished (else empty).
    consumers: tuple[ConsumerObservation, ...] = ()
    #: What each consumer resolved to this run (discovered readers, problems), in spec order.
    resolutions: tuple[Resolution, ...] = ()
    #: The Secret a preset migrates from (the chart's own), read only while no target holds a
    #: value: its value is adopted into the targets instead of creating a key.
    adopt_source: TargetObservation | None = None
    #: Key ids that Secrets outside the targets still hold with rotator metadata: never swept.
    protected_ids: frozenset[int] = frozenset()

    def held_metadata(self) -> KeyMetadata | None:
        """Our metadata for the value every target holds, when they agree on one; else None."""
        states = [t.state for t in self.targets]
        if not states or any(s is None or s.value is None for s in states):
            return None
        fingerprints = {s.fingerprint for s in states if s is not None}
        if len(fingerprints) != 1:
            return None
        found = [s.managed_metadata for s in states if s is not None and s.managed_metadata]
        if not found:
            return None
        # A metadata update that stopped half-way leaves targets disagreeing on progress: the
        # switch counts as finished only where every target says so; a command that ran (done)
        # or a revocation recorded anywhere did happen.
        return replace(
            found[0],
            switched=all(m.switched for m in found) and len(found) == len(states),
            previous_revoked=any(m.previous_revoked for m in found),
            done=tuple(sorted({token for m in found for token in m.done})),
        )


@dataclass(frozen=True)
class TargetRef:
    """A target of the managed key, by its id (``kubernetes-secret:ctx/ns/name[KEY]``)."""

    id: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class ConsumerRef:
    """A consumer, or one workload a consumer covers, by id (``kubernetes-workload:...``)."""

    id: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class KeyRef:
    """A StackState key by kind and id (what revoke and sweep delete)."""

    kind: KeyKind
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


#: What an action acts on; None for create/verify/await of the key as a whole.
Ref = TargetRef | ConsumerRef | KeyRef


@dataclass(frozen=True)
class Action:
    """One step of a plan, printable in a dry-run; apply executes exactly these.

    ``subject`` says what the step acts on (typed: apply never parses a string back);
    ``source`` is the target a repair or an adoption copies from.
    """

    action: ActionType
    subject: Ref | None
    detail: str
    source: TargetRef | None = None

    @property
    def target(self) -> str | None:
        """The subject as printed in plans and the JSON ``target`` field."""
        return None if self.subject is None else str(self.subject)


@dataclass(frozen=True)
class CurrentKey:
    """The key behind the value the targets hold (id/name unknown for adopted values)."""

    id: int | None
    name: str | None
    expiration: datetime | None
    adopted: bool = False


@dataclass(frozen=True)
class KeyPlan:
    """What to do about one managed key, and why."""

    key: str
    kind: KeyKind
    decision: Decision
    reason: str
    current: CurrentKey | None
    actions: tuple[Action, ...] = ()
    #: True when the plan itself is a failure (unreadable target, listing failed).
    failed: bool = False
    #: Whether every target holds the same value; None when that is unknown (unreadable).
    targets_agree: bool | None = True
    #: Name of the key a create action makes (unique among the listed keys of the kind).
    new_key_name: str | None = None
    #: Why the key is not healthy (set on every failed or blocked plan).
    failure: Failure | None = None
    #: A switch-over with nothing to protect completes in this run (apply records it).
    completes_switch: bool = False
    #: Who reads the key, as its consumers resolved this run (discovered workloads included).
    readers: tuple[Reader, ...] = ()
    #: Helm values (path, value) that point a preset's chart at the key's Secret.
    helm_values: tuple[tuple[str, str], ...] = ()
    #: One-line notes for people (a foreign owner allowed by the config, informational readers).
    warnings: tuple[str, ...] = ()
    #: ``rotate --emergency``: rotate now, and revoke the previous key as soon as every consumer
    #: switched, without the grace period (recorded in the pushed metadata).
    emergency: bool = False


@dataclass(frozen=True)
class KeyResult:
    """The plan for one managed key and what came of it."""

    plan: KeyPlan
    outcome: Outcome
    error: str | None = None
    new_key: ApiKey | None = None
    #: For a revocation: how long the switch-over took (push to every consumer switched).
    switch_duration: timedelta | None = None
    #: Why the key failed in this run (None when it did not).
    failure: Failure | None = None

    @property
    def failed(self) -> bool:
        """Whether this key failed: outcome ``failed``, unless its category is ``wait``."""
        failure = self.failure or self.plan.failure
        return self.outcome == "failed" and (failure is None or failure.category != "wait")

    @property
    def expiration(self) -> datetime | None:
        """Expiry of the key in use after this run: the new key's, else the current one's."""
        if self.new_key is not None:
            return self.new_key.expiration
        current = self.plan.current
        return current.expiration if current is not None else None


@dataclass(frozen=True)
class RunReport:
    """The result of one run over the selected managed keys."""

    dry_run: bool
    started_at: datetime
    results: tuple[KeyResult, ...]

    @property
    def failed(self) -> bool:
        """Whether any managed key failed (exit code 1): a failed outcome whose category is
        not ``wait`` (a window or a rollout in progress is progress, not failure)."""
        return any(r.failed for r in self.results)
