"""Preflight: whether the planner may act on a key at all, and what the held values are worth.

Split out of :mod:`rotator.engine.plan` (pure functions of the observation and ``now``): an
incomplete picture or a target another party owns, or a consumer whose readers forbid acting,
blocks the key; :func:`candidates` groups the held values and judges each one; the adoption of a
chart Secret's value in use while no target holds one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from rotator.engine.model import (
    Action,
    CurrentKey,
    Failure,
    KeyPlan,
    ObservedKey,
    TargetObservation,
    TargetRef,
)
from rotator.engine.policy import human_delta
from rotator.engine.ports import ApiKey
from rotator.targets.base import KeyMetadata

_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class Candidate:
    """One distinct value held by one or more targets, and what StackState thinks of it."""

    fingerprint: str
    holders: tuple[TargetObservation, ...]
    metadata: KeyMetadata | None
    api_key: ApiKey | None
    accepted: bool
    reason: str

    @property
    def adopted(self) -> bool:
        """A value the rotator did not create (no metadata naming its key)."""
        return self.metadata is None or self.metadata.key_id is None

    @property
    def rotated_at(self) -> datetime:
        """When the rotator wrote this value (epoch for adopted values)."""
        return self.metadata.rotated_at if self.metadata is not None else _EPOCH

    def current(self, adopt_key_id: int | None) -> CurrentKey:
        """The key behind this value, as far as it is known."""
        if self.api_key is not None:
            return CurrentKey(
                self.api_key.id, self.api_key.name, self.api_key.expiration, self.adopted
            )
        if self.metadata is not None and self.metadata.key_id is not None:
            return CurrentKey(self.metadata.key_id, self.metadata.key_name, None)
        return CurrentKey(adopt_key_id, None, None, adopted=True)


def candidates(observed: ObservedKey, now: datetime) -> list[Candidate]:
    """Group the held values by fingerprint and judge each one."""
    keys = observed.keys_by_id or {}
    groups: dict[str, list[TargetObservation]] = {}
    for obs in observed.targets:
        if obs.fingerprint is not None:
            groups.setdefault(obs.fingerprint, []).append(obs)
    found = []
    for fp, holders in groups.items():
        metadata = next(
            (h.state.managed_metadata for h in holders if h.state and h.state.managed_metadata),
            None,
        )
        key_id = metadata.key_id if metadata is not None else None
        api_key = keys.get(key_id) if key_id is not None else None
        if key_id is not None:
            if api_key is None and metadata is not None and metadata.kind != observed.spec.kind:
                # The managed key's kind changed: the held key is of the old kind, which this
                # run does not list; a new key of the configured kind replaces it, and revoke
                # deletes the old one as its own kind (``previous_kind``).
                accepted = False
                was, now_kind = metadata.kind, observed.spec.kind
                reason = f"key {key_id} is of kind {was}; the managed key is now {now_kind}"
            elif api_key is None:
                accepted, reason = False, f"key {key_id} no longer exists in StackState"
            elif api_key.expiration is not None and api_key.expiration <= now:
                accepted = False
                reason = f"key {api_key.name} expired {human_delta(now - api_key.expiration)} ago"
            else:
                accepted, reason = True, "accepted"
        else:
            if observed.spec.adopt_key_id is not None:
                api_key = keys.get(observed.spec.adopt_key_id)
            verdict = observed.verdicts.get(fp)
            if verdict is None:
                accepted, reason = False, "adopted value could not be verified"
            else:
                accepted = verdict.accepted
                reason = f"adopted value {verdict.reason}"
        found.append(Candidate(fp, tuple(holders), metadata, api_key, accepted, reason))
    return found


def agreement(observed: ObservedKey) -> bool | None:
    """Whether every target holds the same value; None when one could not be read."""
    if any(t.error is not None or t.state is None for t in observed.targets):
        return None
    return len({t.fingerprint for t in observed.targets}) <= 1


def incomplete(observed: ObservedKey) -> KeyPlan | None:
    """A blocked plan when StackState could not be listed or a target not read: the rotator
    never acts on a partial picture."""
    spec = observed.spec
    if observed.keys_by_id is None:
        reason = f"cannot list {spec.kind} keys: {observed.list_error}"
        failure = Failure(
            "observe",
            observed.list_category,
            observed.list_error_type or "StackStateError",
            reason,
        )
    else:
        unreadable = [t for t in observed.targets if t.error is not None or t.state is None]
        if not unreadable:
            return None
        first = unreadable[0]
        reason = f"cannot read {first.target.describe()}: {first.error}"
        failure = Failure(
            "observe", first.category or "retry", first.error_type or "TargetError", reason
        )
    return KeyPlan(
        key=spec.name,
        kind=spec.kind,
        decision="blocked",
        reason=reason,
        current=None,
        failed=True,
        targets_agree=agreement(observed),
        failure=failure,
    )


def plan_warnings(observed: ObservedKey) -> tuple[str, ...]:
    """Notes for people: allowed foreign owners, readers never restarted, discovery limits."""
    found = [
        f"{t.target.describe()} is owned by {t.state.owner}; written anyway because "
        "allow_foreign_owner is true (its owner must render the rotator's value, or the next "
        "sync writes the old key back)"
        for t in observed.targets
        if t.state is not None and t.state.owner is not None and t.state.owner_allowed
    ]
    for resolution in observed.resolutions:
        found += resolution.warnings
        found += [f"{r.id} reads the key ({r.how})" for r in resolution.readers if not r.restarted]
    return tuple(found)


def _foreign_owner_reason(observed: ObservedKey, target: TargetObservation) -> str:
    assert target.state is not None
    values = observed.spec.helm_values
    if values:
        fix = "point the chart at a Secret the rotator owns: " + ", ".join(
            f"--set {path}={value}" for path, value in values
        )
    else:
        fix = (
            "let the rotator write a Secret of its own and point the chart at it "
            "(suse-observability-agent chart: --set global.apiKey.fromSecret=<secret>; "
            "stackstate-k8s-agent chart: --set stackstate.manageOwnSecrets=true,"
            "stackstate.customSecretName=<secret>)"
        )
    return (
        f"{target.target.describe()} is owned by {target.state.owner}: the next helm upgrade "
        f"or sync writes its own value back, onto a key the rotator may have deleted. Fix: "
        f"{fix}; or set allow_foreign_owner: true on the target if that owner renders the "
        "rotator's value"
    )


def adoption_actions(observed: ObservedKey, now: datetime) -> tuple[Action, ...]:
    """While no target holds a value: copy the value in use from the adopt source, when it
    holds one StackState accepts (a key that already works: no gap, no new key)."""
    source = observed.adopt_source
    if source is None or source.fingerprint is None:
        return ()
    if any(t.fingerprint is not None for t in observed.targets):
        return ()
    judged = candidates(replace(observed, targets=(source,)), now)
    if not judged or not judged[0].accepted:
        return ()
    return tuple(
        Action(
            "push",
            TargetRef(t.target.id),
            f"adopt the value in use from {source.target.describe()} (no new key)",
            source=TargetRef(source.target.id),
        )
        for t in observed.targets
    )


def preflight(observed: ObservedKey, now: datetime) -> KeyPlan | None:
    """A blocked plan when a target's owner or a consumer's readers forbid acting; else None."""
    spec = observed.spec
    for target in observed.targets:
        state = target.state
        if state is not None and state.owner is not None and not state.owner_allowed:
            reason = _foreign_owner_reason(observed, target)
            return KeyPlan(
                key=spec.name,
                kind=spec.kind,
                decision="blocked",
                reason=reason,
                current=None,
                failed=True,
                failure=Failure("preflight", "human", "ForeignOwner", reason),
            )
    blocking = [(r, p) for r in observed.resolutions for p in r.blocking]
    if not blocking:
        return None
    resolution, problem = blocking[0]
    adoption = adoption_actions(observed, now)
    reason = problem
    if adoption:
        reason = f"{problem}; meanwhile the value in use is adopted into the rotator's Secret"
    return KeyPlan(
        key=spec.name,
        kind=spec.kind,
        decision="blocked",
        reason=reason,
        current=None,
        actions=adoption,
        failed=True,
        failure=Failure("preflight", resolution.category, "ConsumersBlocked", problem),
    )
