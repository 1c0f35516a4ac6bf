"""The switch-over after a push: trigger and await consumers, grace period, then revoke (I2).

Split out of :mod:`rotator.engine.plan`; pure functions of the observation and ``now``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.engine.model import Action, ConsumerRef, Failure, KeyRef, ObservedKey
from rotator.engine.naming import parse_key_name
from rotator.engine.policy import human_delta
from rotator.engine.ports import KeyKind, KeyMetadata

#: The key kinds a metadata record may name.
_KINDS: dict[str | None, KeyKind] = {kind.value: kind for kind in KeyKind}


def still_live(held: KeyMetadata | None) -> str:
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
class Switch:
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


def plan_switch(observed: ObservedKey, held: KeyMetadata, now: datetime) -> Switch:
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
        return Switch(
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
        return Switch(
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
            return Switch(
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
        return Switch(
            "switch",
            reason,
            actions,
            failure=Failure("switch", "wait", "SwitchInProgress", reason),
        )
    if not protects:
        # Nothing for a grace period to protect: complete now, and say so (never "revoked").
        reminder = still_live(dataclasses.replace(held, switched=True))
        return Switch(
            "switch",
            f"switch complete; no previous key ({len(states)} consumer(s) switched){reminder}",
            (Action("await", None, "record that the switch-over is complete"),),
            completes=True,
        )
    switched_at = held.switched_at or now
    # rotate --emergency (recorded in the metadata): no grace period once every consumer
    # demonstrably switched (I2 holds: nothing above returned "switched" before they did).
    grace_end = switched_at + (timedelta(0) if held.emergency else spec.grace_period)
    if now < grace_end:
        detail = f"grace period until {grace_end:%Y-%m-%d %H:%M:%S}Z"
        reason = f"all {len(states)} consumer(s) switched; {detail}; {previous}"
        return Switch(
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
    passed = (
        "emergency rotation: revoked without the grace period"
        if held.emergency
        else "the grace period passed"
    )
    return Switch(
        "revoke",
        f"all {len(states)} consumer(s) switched and {passed}",
        (Action("revoke", KeyRef(previous_kind, held.previous_key_id), detail),),
    )
