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

The steps live in their own modules: preflight and the judging of held values in
:mod:`rotator.engine.preflight`, the switch-over in :mod:`rotator.engine.switch`, the orphan sweep
in :mod:`rotator.engine.sweep`; this module decides and stays the planner's public entry point.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from rotator.engine.listing import KeyListing
from rotator.engine.model import (
    Action,
    ConsumerRef,
    Failure,
    KeyPlan,
    ObservedKey,
    TargetRef,
)
from rotator.engine.naming import PROCESS_SALT, parse_key_name, unique_key_name
from rotator.engine.policy import Due, human_delta, rotation_due, window_gate
from rotator.engine.preflight import (
    Candidate,
    adoption_actions,
    candidates,
    incomplete,
    plan_warnings,
    preflight,
)
from rotator.engine.sweep import sweep_actions
from rotator.engine.switch import (
    Switch,
    plan_switch,
    previous_is_ours,
    protects_previous,
    still_live,
)

__all__ = [
    "Candidate",
    "candidates",
    "new_key_name",
    "plan_key",
    "previous_is_ours",
    "protects_previous",
    "sweep_actions",
]


def new_key_name(observed: ObservedKey, now: datetime, *, salt: bytes = PROCESS_SALT) -> str:
    """``<managed>-<timestamp>-<nonce>`` for ``now`` that no listed key has.

    Two keys sharing a name would make the create's id lookup ambiguous, so the name carries a
    nonce (:func:`~rotator.engine.naming.unique_key_name`) that differs between processes (two
    hosts rotating in the same second) and is the same for every call of one process with the
    same ``now`` (the action text and the plan's ``new_key_name`` agree); a name that is
    already listed is never reused.
    """
    taken = KeyListing.of(observed.keys_by_id or {}).names  # indexed once per run
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


def plan_key(
    observed: ObservedKey, now: datetime, *, force: bool = False, emergency: bool = False
) -> KeyPlan:
    """Decide what to do about one managed key (see the module docstring), sweep included.

    ``emergency`` (``rotate --emergency``, a leaked key) forces a rotation whatever the windows
    and the consumers' preflight problems, and marks it so that the previous key is revoked as
    soon as every consumer switched, without the grace period; an unfinished switch-over is
    finished that way first. A suspended key (``suspend: true``) is planned as usual and then
    reported as ``suspended`` with no action at all."""
    decided = _decide(observed, now, force=force or emergency, emergency=emergency)
    readers = tuple(r for res in observed.resolutions for r in res.readers)
    warnings = plan_warnings(observed)
    decided = replace(
        decided,
        readers=readers,
        warnings=decided.warnings + warnings,
        helm_values=observed.spec.helm_values,
    )
    if observed.spec.suspended:
        return _suspended(decided)
    if emergency:
        decided = replace(
            decided,
            emergency=True,
            reason=f"EMERGENCY (rotate --emergency): {decided.reason}",
            warnings=(
                "emergency: the previous key is revoked as soon as every consumer switched, "
                f"without the grace period ({human_delta(observed.spec.grace_period)} ignored); "
                "it is never revoked before they did",
                *decided.warnings,
            ),
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


def _suspended(decided: KeyPlan) -> KeyPlan:
    """The plan of a suspended key: what it would do, and no action. Only a failed observation
    (an unreadable target, StackState not listed) stays a failure: the key is still reported."""
    if decided.failed and decided.failure is not None and decided.failure.step == "observe":
        return replace(decided, actions=(), reason=f"suspended; {decided.reason}")
    return replace(
        decided,
        decision="suspended",
        reason=(
            f"suspended (suspend: true): nothing is done; otherwise {decided.decision}: "
            f"{decided.reason}"
        ),
        actions=(),
        failed=False,
        failure=None,
        new_key_name=None,
        completes_switch=False,
    )


def _decide(observed: ObservedKey, now: datetime, *, force: bool, emergency: bool) -> KeyPlan:
    spec = observed.spec

    def plan(decision: str, reason: str, **kwargs: Any) -> KeyPlan:
        # Plans that create go through _creating, which names the new key once.
        return KeyPlan(key=spec.name, kind=spec.kind, decision=decision, reason=reason, **kwargs)  # type: ignore[arg-type]

    blocked = incomplete(observed) or preflight(observed, now)
    if blocked is not None:
        return blocked

    found = candidates(observed, now)
    empty = [t for t in observed.targets if t.fingerprint is None]
    if not found:
        adoption = adoption_actions(observed, now)
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
    switch: Switch | None = None
    if not only.adopted and held is not None and held.key_id is not None and not held.switched:
        # The switch-over to the held value is unfinished: finish it before anything else, or
        # a new rotation would orphan the key some consumers may still be using (I2) — unless
        # it protects nothing, then a due rotation goes ahead (its own switch-over follows).
        switch = plan_switch(observed, held, now)
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
            if emergency and not switch.failed:
                # Finish it now without the grace period (the previous key may be the leaked
                # one); the emergency rotation follows once it is done.
                finish = plan_switch(observed, replace(held, emergency=True), now)
                return plan(
                    finish.decision,
                    f"finishing the unfinished switch-over first, without the grace period "
                    f"(a new key follows once it is done): {finish.reason}",
                    current=current,
                    actions=finish.actions,
                    failure=finish.failure,
                    completes_switch=finish.completes,
                )
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
    if emergency:
        due = Due(True, False, "emergency rotation requested (the key in use may have leaked)")
    elif force:
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
        return plan("ok", due.reason + still_live(held), current=current)
    if force:
        # A person asked for this rotation now: maintenance windows gate automatic work only.
        # In an emergency a consumer that cannot switch does not hold it back either: it keeps
        # the previous key alive (I2), and the switch-over reports it.
        return _creating(
            observed, plan("rotate", due.reason, current=current), now, critical=emergency
        )
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
    # A value whose metadata names another candidate's key as its previous one is the newer of
    # the two whatever the clocks say (rotated_at has whole seconds: a rotation in the same
    # second as the one before would otherwise tie, and the value in more targets, the old
    # one, win); then the newest write; then the value most targets hold.
    succeeded = {
        c.metadata.previous_key_id
        for c in accepted
        if c.metadata is not None and c.metadata.previous_key_id is not None
    }
    best = max(
        accepted,
        key=lambda c: (
            c.metadata is None or c.metadata.key_id not in succeeded,
            c.rotated_at,
            len(c.holders),
        ),
    )
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
