"""Planning: a pure function from what was observed (and ``now``) to the actions for a key.

Decision procedure for one managed key:

1. StackState could not be listed, or a target could not be read → ``blocked`` (failed): we
   do not act on a partial picture.
2. No target holds a value → ``bootstrap``: create, verify, push everywhere.
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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rotator.engine.model import (
    Action,
    CurrentKey,
    KeyPlan,
    ObservedKey,
    TargetObservation,
)
from rotator.engine.naming import key_name, parse_key_name
from rotator.engine.policy import Due, human_delta, rotation_due, window_gate
from rotator.stackstate import ApiKey
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


def new_key_name(observed: ObservedKey, now: datetime) -> str:
    """``<managed>-<timestamp>`` for ``now``, moved on by seconds until no listed key has it.

    Two keys sharing a name would make the create's id lookup ambiguous (and the client then
    deletes both), so a rotation in the same second as the previous one must not reuse it.
    """
    taken = {k.name for k in (observed.keys_by_id or {}).values()}
    moment = now
    name = key_name(observed.spec.name, moment)
    while name in taken:
        moment += timedelta(seconds=1)
        name = key_name(observed.spec.name, moment)
    return name


def _rotation_actions(observed: ObservedKey, now: datetime) -> tuple[Action, ...]:
    spec = observed.spec
    name = new_key_name(observed, now)
    expires = now + spec.validity
    actions = [
        Action("create", None, f"{spec.kind} {name}, expires {expires:%Y-%m-%d %H:%M}Z"),
        Action("verify", None, f"StackState accepts {name} for ingestion"),
    ]
    actions += [
        Action("push", t.target.id, f"write {name} and its metadata") for t in observed.targets
    ]
    return tuple(actions)


def plan_key(observed: ObservedKey, now: datetime, *, force: bool = False) -> KeyPlan:
    """Decide what to do about one managed key (see the module docstring)."""
    spec = observed.spec

    def plan(decision: str, reason: str, **kwargs: Any) -> KeyPlan:
        actions: tuple[Action, ...] = kwargs.get("actions", ())
        if any(a.action == "create" for a in actions):
            kwargs["new_key_name"] = new_key_name(observed, now)
        return KeyPlan(key=spec.name, kind=spec.kind, decision=decision, reason=reason, **kwargs)  # type: ignore[arg-type]

    if observed.keys_by_id is None:
        return plan(
            "blocked",
            f"cannot list {spec.kind} keys: {observed.list_error}",
            current=None,
            failed=True,
        )
    unreadable = [t for t in observed.targets if t.error is not None or t.state is None]
    if unreadable:
        first = unreadable[0]
        return plan(
            "blocked",
            f"cannot read {first.target.describe()}: {first.error}",
            current=None,
            failed=True,
            targets_agree=False,
        )

    found = candidates(observed, now)
    empty = [t for t in observed.targets if t.fingerprint is None]
    if not found:
        return plan(
            "bootstrap",
            "no target holds a value yet",
            current=None,
            actions=_rotation_actions(observed, now),
        )

    agree = len(found) == 1 and not empty
    if not agree:
        accepted = [c for c in found if c.accepted]
        if not accepted:
            return plan(
                "rotate",
                "targets disagree and none holds a value StackState accepts",
                current=None,
                actions=_rotation_actions(observed, now),
                targets_agree=False,
            )
        best = max(accepted, key=lambda c: (c.rotated_at, len(c.holders)))
        source = best.holders[0].target
        pushes = tuple(
            Action(
                "push",
                t.target.id,
                f"copy the value {best.fingerprint} from {source.id}",
                source=source.id,
            )
            for t in observed.targets
            if t.fingerprint != best.fingerprint
        )
        holding = ", ".join(h.target.id for h in best.holders)
        return plan(
            "repair",
            f"targets disagree; copying the newest accepted value (held by {holding})",
            current=best.current(spec.adopt_key_id),
            actions=pushes,
            targets_agree=False,
        )

    only = found[0]
    current = only.current(spec.adopt_key_id)
    if not only.accepted:
        return plan(
            "rotate",
            f"current value is not usable: {only.reason}",
            current=current,
            actions=_rotation_actions(observed, now),
        )
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
        return plan("ok", due.reason, current=current)
    if force:
        # A person asked for this rotation now: maintenance windows gate automatic work only.
        return plan("rotate", due.reason, current=current, actions=_rotation_actions(observed, now))
    gate = window_gate(
        due,
        spec.windows,
        expiration=current.expiration,
        margin=spec.window_margin,
        now=now,
    )
    if not gate.allowed:
        return plan("blocked", f"{due.reason}; {gate.reason}", current=current)
    reason = f"{due.reason}; {gate.reason}" if gate.reason else due.reason
    return plan("rotate", reason, current=current, actions=_rotation_actions(observed, now))
