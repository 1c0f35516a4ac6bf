"""Planning: a pure function from what was observed (and ``now``) to the actions for a key.

Decision procedure for one managed key:

1. StackState could not be listed, or a target could not be read → ``blocked`` (failed): we
   do not act on a partial picture.
2. Preflight (step ``preflight``, nothing is written):
   - a target another party owns (Helm, Argo CD, Flux, a controller) → ``blocked``: its owner
     writes its own value back on the next sync, onto a key we may have deleted; a target that
     ``allow_foreign_owner`` lets through is written with a warning;
   - a consumer resolved to *blocking* problems (no reader at all, readers still on a legacy
     Secret) → ``blocked``: rotating or revoking would cut those readers off (I2). While no
     target holds a value, the value in use is still adopted from the preset's chart Secret,
     so the migration has no gap.
3. No target holds a value → ``bootstrap``: adopt the value in use from the chart Secret a
   preset migrates from (copy, no new key), else create, verify, push everywhere.
3. Targets disagree (a push stopped half-way, or someone edited one) → ``repair``: copy the
   newest value StackState accepts to the other targets; when none is accepted → ``rotate``.
4. All targets hold one value:
   - StackState does not accept it (expired, deleted, refused) → ``rotate`` now (critical:
     maintenance windows do not hold it back);
   - it is an adopted value (not created by the rotator) → ``rotate``, as soon as a window
     allows: its expiry cannot be known;
   - its key expires within ``rotate_before`` (or, without expiry, is too old), or ``force``
     → ``rotate`` when a window allows, else ``blocked`` (waiting, not failed);
   - otherwise ``ok``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rotator.engine.model import (
    Action,
    ConsumerRef,
    CurrentKey,
    Failure,
    KeyPlan,
    KeyRef,
    ObservedKey,
    TargetObservation,
    TargetRef,
)
from rotator.engine.naming import PROCESS_SALT, parse_key_name, unique_key_name
from rotator.engine.policy import Due, human_delta, rotation_due, window_gate
from rotator.stackstate import ApiKey, KeyKind
from rotator.targets.base import KeyMetadata

_EPOCH = datetime.fromtimestamp(0, UTC)
#: The key kinds a metadata record may name.
_KINDS: dict[str | None, KeyKind] = {
    "service-token": "service-token",
    "ingestion-api-key": "ingestion-api-key",
}


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
            if api_key is None:
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


def new_key_name(observed: ObservedKey, now: datetime, *, salt: bytes = PROCESS_SALT) -> str:
    """``<managed>-<timestamp>-<nonce>`` for ``now`` that no listed key has.

    Two keys sharing a name would make the create's id lookup ambiguous, so the name carries a
    nonce (:func:`~rotator.engine.naming.unique_key_name`) that differs between processes (two
    hosts rotating in the same second) and is the same for every call of one process with the
    same ``now`` (the action text and the plan's ``new_key_name`` agree); a name that is
    already listed is never reused.
    """
    taken = {k.name for k in (observed.keys_by_id or {}).values()}
    return unique_key_name(observed.spec.name, now, taken, salt=salt)


def _rotation_actions(observed: ObservedKey, name: str, now: datetime) -> tuple[Action, ...]:
    """Create ``name``, verify it, push it everywhere, then switch the consumers over."""
    spec = observed.spec
    expires = now + spec.validity
    actions = [
        Action("create", None, f"{spec.kind} {name}, expires {expires:%Y-%m-%d %H:%M}Z"),
        Action("verify", None, f"StackState accepts {name} for ingestion"),
    ]
    actions += [
        Action("push", TargetRef(t.target.id), f"write {name} and its metadata")
        for t in observed.targets
    ]
    # The switch-over that follows the push (revocation comes in a later run, once proven).
    return tuple(actions) + _consumer_actions(observed)


def _consumer_actions(observed: ObservedKey) -> tuple[Action, ...]:
    """The restarts (and awaits) that follow a push: one per resolved reader, else one per
    consumer. Apply triggers exactly these, so the dry-run shows what runs."""
    spec = observed.spec
    actions: list[Action] = []
    resolved = dict(zip((c.id for c in spec.consumers), observed.resolutions, strict=False))
    for consumer in spec.consumers:
        resolution = resolved.get(consumer.id)
        readers = [r for r in resolution.readers if r.restarted] if resolution else []
        if not readers:
            actions.append(
                Action(
                    consumer.plan_action,
                    ConsumerRef(consumer.id),
                    f"then: {consumer.describe()}",
                )
            )
            continue
        verb = "restart" if consumer.plan_action == "restart" else "wait for the rollout of"
        actions += [
            Action(
                consumer.plan_action, ConsumerRef(r.id), f"then: {verb} it (reads the key: {r.how})"
            )
            for r in readers
        ]
    return tuple(actions)


def plan_key(observed: ObservedKey, now: datetime, *, force: bool = False) -> KeyPlan:
    """Decide what to do about one managed key (see the module docstring), sweep included."""
    decided = _decide(observed, now, force=force)
    readers = tuple(r for res in observed.resolutions for r in res.readers)
    warnings = _warnings(observed)
    decided = replace(
        decided,
        readers=readers,
        warnings=decided.warnings + warnings,
        helm_values=observed.spec.helm_values,
    )
    if decided.failed:
        if decided.failure is None:
            decided = replace(
                decided, failure=Failure("switch", "human", "SwitchBlocked", decided.reason)
            )
        return decided
    sweeps = sweep_actions(observed, now)
    if not sweeps:
        return decided
    return replace(decided, actions=decided.actions + sweeps)


def _agreement(observed: ObservedKey) -> bool | None:
    """Whether every target holds the same value; None when one could not be read."""
    if any(t.error is not None or t.state is None for t in observed.targets):
        return None
    return len({t.fingerprint for t in observed.targets}) <= 1


def _incomplete(observed: ObservedKey) -> KeyPlan | None:
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
        targets_agree=_agreement(observed),
        failure=failure,
    )


def _warnings(observed: ObservedKey) -> tuple[str, ...]:
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


def _adoption(observed: ObservedKey, now: datetime) -> tuple[Action, ...]:
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


def _preflight(observed: ObservedKey, now: datetime) -> KeyPlan | None:
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
    adoption = _adoption(observed, now)
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


def _decide(observed: ObservedKey, now: datetime, *, force: bool) -> KeyPlan:
    spec = observed.spec

    def plan(decision: str, reason: str, **kwargs: Any) -> KeyPlan:
        # Plans that create go through _creating, which names the new key once.
        return KeyPlan(key=spec.name, kind=spec.kind, decision=decision, reason=reason, **kwargs)  # type: ignore[arg-type]

    blocked = _incomplete(observed) or _preflight(observed, now)
    if blocked is not None:
        return blocked

    found = candidates(observed, now)
    empty = [t for t in observed.targets if t.fingerprint is None]
    if not found:
        adoption = _adoption(observed, now)
        if adoption:
            assert observed.adopt_source is not None
            return plan(
                "bootstrap",
                f"no target holds a value yet; adopting the value in use from "
                f"{observed.adopt_source.target.describe()} (no new key is created)",
                current=None,
                actions=adoption,
            )
        return _creating(
            observed,
            plan("bootstrap", "no target holds a value yet", current=None),
            now,
            critical=True,
        )

    if len(found) != 1 or empty:
        return _disagreement(observed, found, now)

    only = found[0]
    current = only.current(spec.adopt_key_id)
    if not only.accepted:
        return _creating(
            observed,
            plan("rotate", f"current value is not usable: {only.reason}", current=current),
            now,
            critical=True,
        )
    held = observed.held_metadata()
    switch: _Switch | None = None
    if not only.adopted and held is not None and held.key_id is not None and not held.switched:
        # The switch-over to the held value is unfinished: finish it before anything else, or
        # a new rotation would orphan the key some consumers may still be using (I2) — unless
        # it protects nothing, then a due rotation goes ahead (its own switch-over follows).
        switch = _switch_plan(observed, held, now)
        switch_plan = plan(
            switch.decision,
            switch.reason,
            current=current,
            actions=switch.actions,
            failed=switch.failed,
            failure=switch.failure,
            completes_switch=switch.completes,
        )
        if protects_previous(observed, held) or switch.failed:
            if force and not switch.failed:
                reason = (
                    f"not forced: the switch-over to the current key is unfinished and the "
                    f"previous key must stay until it is ({switch.reason})"
                )
                return replace(
                    switch_plan,
                    decision="blocked",
                    reason=reason,
                    actions=(),
                    failure=Failure("switch", "wait", "SwitchInProgress", reason),
                )
            return switch_plan
    if force:
        due = Due(True, False, "forced")
    elif only.adopted:
        due = Due(True, False, "adopted value (not created by the rotator): its expiry is unknown")
    else:
        created = only.api_key.expiration if only.api_key else None
        parsed = parse_key_name(only.api_key.name) if only.api_key else None
        due = rotation_due(
            expiration=created,
            created_at=parsed.created_at if parsed else only.rotated_at,
            validity=spec.validity,
            rotate_before=spec.rotate_before,
            now=now,
        )
    if not due.due:
        if switch is not None:
            return switch_plan
        return plan("ok", due.reason + _still_live(held), current=current)
    if force:
        # A person asked for this rotation now: maintenance windows gate automatic work only.
        return _creating(observed, plan("rotate", due.reason, current=current), now, critical=False)
    gate = window_gate(
        due,
        spec.windows,
        expiration=current.expiration,
        margin=spec.window_margin,
        now=now,
    )
    if not gate.allowed:
        if switch is not None:
            return switch_plan
        reason = f"{due.reason}; {gate.reason}"
        return plan(
            "blocked",
            reason,
            current=current,
            failure=Failure("preflight", "wait", "OutsideWindow", reason),
        )
    reason = f"{due.reason}; {gate.reason}" if gate.reason else due.reason
    return _creating(observed, plan("rotate", reason, current=current), now, critical=False)


def _creating(observed: ObservedKey, base: KeyPlan, now: datetime, *, critical: bool) -> KeyPlan:
    """``base`` with the rotation's actions, unless a consumer could not switch to a new key.

    A consumer that is missing, paused or cannot be rolled holds a rotation back *before* any
    key is created (step ``preflight``), while the current key still works. When it does not
    (``critical``: expired, refused, or no value at all), ingestion fails anyway: the rotation
    goes ahead and the problem is reported as a warning; the switch-over then reports it.
    """
    problems = [(r, p) for r in observed.resolutions for p in r.before_create]
    if problems and not critical:
        resolution, first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        reason = (
            f"{base.reason}; held back: {first}{more}; nothing was created, the current key "
            "stays in use"
        )
        return replace(
            base,
            decision="blocked",
            reason=reason,
            actions=(),
            failed=True,
            failure=Failure(
                "preflight", resolution.category, "ConsumerCannotSwitch", f"{first}{more}"
            ),
        )
    warnings = tuple(f"rotating although {p}" for _, p in problems)
    name = new_key_name(observed, now)
    return replace(
        base,
        actions=_rotation_actions(observed, name, now),
        new_key_name=name,
        warnings=base.warnings + warnings,
    )


def _disagreement(observed: ObservedKey, found: list[Candidate], now: datetime) -> KeyPlan:
    """Targets disagree: copy the newest accepted value to the others (``repair``), or rotate
    when none is accepted."""
    spec = observed.spec
    base = KeyPlan(
        key=spec.name,
        kind=spec.kind,
        decision="rotate",
        reason="targets disagree and none holds a value StackState accepts",
        current=None,
        targets_agree=False,
    )
    accepted = [c for c in found if c.accepted]
    if not accepted:
        return _creating(observed, base, now, critical=True)
    best = max(accepted, key=lambda c: (c.rotated_at, len(c.holders)))
    source = best.holders[0].target
    pushes = tuple(
        Action(
            "push",
            TargetRef(t.target.id),
            f"copy the value {best.fingerprint} from {source.id}",
            source=TargetRef(source.id),
        )
        for t in observed.targets
        if t.fingerprint != best.fingerprint
    )
    meta = best.metadata
    if meta is not None and meta.key_id is not None and not meta.switched:
        # A push that stopped half-way: once every target holds it, its consumers are told
        # to switch in the same run.
        pushes += _consumer_actions(observed)
    holding = ", ".join(h.target.id for h in best.holders)
    return replace(
        base,
        decision="repair",
        reason=f"targets disagree; copying the newest accepted value (held by {holding})",
        current=best.current(spec.adopt_key_id),
        actions=pushes,
    )


def _still_live(held: KeyMetadata | None) -> str:
    """A reminder when the key the held value replaced was not ours to delete."""
    if held is None or held.previous_revoked or not held.switched:
        return ""
    if held.previous_key_id is None and held.previous_key_name is None:
        return ""
    what = held.previous_key_name or f"key {held.previous_key_id}"
    return (
        f"; the previous {what} was not created by the rotator and may still be live in "
        "StackState: delete it by hand (or name it in adopt_key_id)"
    )


@dataclass(frozen=True)
class _Switch:
    decision: str
    reason: str
    actions: tuple[Action, ...] = ()
    failed: bool = False
    failure: Failure | None = None
    #: The switch-over is complete now (nothing to protect): apply records it.
    completes: bool = False


def previous_is_ours(observed: ObservedKey, held: KeyMetadata) -> bool:
    """Whether the key the held value replaced may be deleted: the rotator created it (its
    name is ``<managed>-<timestamp>``) or the configuration names it as ``adopt_key_id``."""
    if held.previous_key_id is None:
        return False
    if held.previous_key_id == observed.spec.adopt_key_id:
        return True
    parsed = parse_key_name(held.previous_key_name or "")
    return parsed is not None and parsed.managed == observed.spec.name


def protects_previous(observed: ObservedKey, held: KeyMetadata) -> bool:
    """Whether the switch-over to the held value protects a key the rotator will revoke.

    Without one (bootstrap; an adopted value without ``adopt_key_id``; already revoked) there is
    nothing a grace period could protect: the switch-over completes as soon as the consumers
    switched, and it never holds a due rotation back.
    """
    return not held.previous_revoked and previous_is_ours(observed, held)


def _switch_plan(observed: ObservedKey, held: KeyMetadata, now: datetime) -> _Switch:
    """Switch-over of the held value: trigger and await consumers, then grace, then revoke."""
    spec = observed.spec
    protects = protects_previous(observed, held)
    previous = (
        f"previous key {held.previous_key_name or held.previous_key_id} kept"
        if protects
        else "no previous key to revoke"
    )
    broken = [c for c in observed.consumers if c.error is not None]
    if broken:
        reason = f"cannot observe {broken[0].consumer.id}: {broken[0].error}; {previous}"
        return _Switch(
            "blocked",
            reason,
            failed=True,
            failure=Failure(
                "switch",
                broken[0].category or "retry",
                broken[0].error_type or "ConsumerUnobservable",
                reason,
            ),
        )
    states = [state for c in observed.consumers for state in c.states]
    failed = [s for s in states if s.failed]
    if failed:
        reason = f"consumer {failed[0].id} failed: {failed[0].reason}; {previous}"
        return _Switch(
            "blocked",
            reason,
            failed=True,
            failure=Failure("switch", failed[0].category or "human", "ConsumerFailed", reason),
        )
    waiting = [s for s in states if not s.switched]
    elapsed = now - held.rotated_at
    if waiting:
        first = waiting[0]
        actions = tuple(
            Action(
                "restart" if s.phase == "needs-trigger" else "await", ConsumerRef(s.id), s.reason
            )
            for s in waiting
        )
        if elapsed > spec.switch_timeout:
            reason = (
                f"switch_timeout: {len(waiting)} consumer(s) not switched "
                f"{human_delta(elapsed)} after the push (limit {human_delta(spec.switch_timeout)})"
                f": {first.id}: {first.reason}; {previous}"
            )
            # Failed, but consumers that still need a restart keep getting one: once the cause
            # is gone (a 403 fixed), the switch-over finishes without a person restarting them.
            return _Switch(
                "blocked",
                reason,
                tuple(a for a in actions if a.action == "restart"),
                failed=True,
                failure=Failure("switch", "human", "SwitchTimeout", reason),
            )
        reason = (
            f"waiting for {len(waiting)} of {len(states)} consumer(s): {first.id}: {first.reason}"
            f"; {previous}"
        )
        return _Switch(
            "switch",
            reason,
            actions,
            failure=Failure("switch", "wait", "SwitchInProgress", reason),
        )
    if not protects:
        # Nothing for a grace period to protect: complete now, and say so (never "revoked").
        reminder = _still_live(dataclasses.replace(held, switched=True))
        return _Switch(
            "switch",
            f"switch complete; no previous key ({len(states)} consumer(s) switched){reminder}",
            (Action("await", None, "record that the switch-over is complete"),),
            completes=True,
        )
    switched_at = held.switched_at or now
    grace_end = switched_at + spec.grace_period
    if now < grace_end:
        detail = f"grace period until {grace_end:%Y-%m-%d %H:%M:%S}Z"
        reason = f"all {len(states)} consumer(s) switched; {detail}; {previous}"
        return _Switch(
            "switch",
            reason,
            (Action("await", None, detail),),
            failure=Failure("switch", "wait", "GracePeriod", reason),
        )
    listed = observed.keys_by_id or {}
    assert held.previous_key_id is not None
    name = held.previous_key_name or str(held.previous_key_id)
    # A previous key of another kind (the config moved from ingestion keys to service tokens)
    # is deleted as that kind; this run listed only the current kind, so it cannot tell.
    previous_kind: KeyKind = _KINDS.get(held.previous_kind, spec.kind)
    if previous_kind != spec.kind:
        detail = f"delete previous {previous_kind} {name} (id {held.previous_key_id})"
    elif held.previous_key_id in listed:
        detail = f"delete previous key {name} (id {held.previous_key_id})"
    else:
        detail = f"previous key {name} is already gone; record the revocation"
    return _Switch(
        "revoke",
        f"all {len(states)} consumer(s) switched and the grace period passed",
        (Action("revoke", KeyRef(previous_kind, held.previous_key_id), detail),),
    )


def sweep_actions(observed: ObservedKey, now: datetime) -> tuple[Action, ...]:
    """Orphans to delete: keys named like this managed key that no target references.

    Only when every target was read and every held value is identified by our metadata — an
    unidentified value might be one of these keys, and deleting it would cut ingestion (I1).
    Keys younger than ``orphan_min_age`` are left alone: a concurrent run may have created one
    and not pushed it yet.
    """
    spec = observed.spec
    listed = observed.keys_by_id
    if listed is None:
        return ()
    referenced: set[int] = set()
    for obs in observed.targets:
        if obs.state is None:
            return ()
        if obs.state.value is None:
            continue
        meta = obs.state.managed_metadata
        if meta is None or meta.key_id is None:
            return ()
        referenced.add(meta.key_id)
        if meta.previous_key_id is not None and not meta.previous_revoked:
            referenced.add(meta.previous_key_id)
    if spec.adopt_key_id is not None:
        referenced.add(spec.adopt_key_id)
    # Keys a Secret outside the targets still holds for its readers (a chart Secret a preset
    # migrates from, written by an older setup): deleting one would cut those readers off (I1).
    referenced |= observed.protected_ids
    actions = []
    prefix = f"{spec.name}-"
    for key in sorted(listed.values(), key=lambda k: k.name):
        if not key.name.startswith(prefix):
            continue  # cheap filter first: the listing holds every managed key's keys
        parsed = parse_key_name(key.name)
        if parsed is None or parsed.managed != spec.name or key.id in referenced:
            continue
        age = now - parsed.created_at
        if age < spec.orphan_min_age:
            continue
        actions.append(
            Action(
                "sweep",
                KeyRef(spec.kind, key.id),
                f"delete orphan {key.name} ({human_delta(age)} old, referenced by no target)",
            )
        )
    return tuple(actions)
