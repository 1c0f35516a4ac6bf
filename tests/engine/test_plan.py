"""The planner: a pure function from what was observed (and now) to a key's plan (engine.plan).

Observed state is built directly from the engine's plain dataclasses. Targets are
:class:`MemoryTarget` instances, a tiny in-memory implementation of the Target Protocol: the
planner never calls a target (observing does), it only reads the state carried by each
:class:`TargetObservation`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.engine.model import (
    CurrentKey,
    KeyPlan,
    KeySpec,
    ObservedKey,
    TargetObservation,
)
from rotator.engine.naming import ManagedName, key_name, parse_key_name
from rotator.engine.plan import new_key_name, plan_key
from rotator.engine.policy import Windows
from rotator.keytypes import ApiKey, VerifyResult
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, Target, TargetState

DAY = timedelta(days=1)
# Tuesday 24 November 2026: noon is outside the weekday-night windows, 03:30 inside.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 24, 3, 30, tzinfo=UTC)
WEEKDAY_NIGHTS = ("0 2-5 * * 1-5",)
VALIDITY = 90 * DAY
ROTATE_BEFORE = 14 * DAY

VALUE_A = Secret("value-a-0f1e2d3c4b5a69788796a5b4")
VALUE_B = Secret("value-b-1a2b3c4d5e6f70819203a4b5")
VALUE_C = Secret("value-c-adopted-9e8d7c6b5a493827")
VALUE_D = Secret("value-d-adopted-rejected-5f4e3d2c")
VALUE_E = Secret("value-e-adopted-rejected-6a7b8c9d")

ACCEPTED = VerifyResult(accepted=True, reason="accepted", status=204)
REJECTED = VerifyResult(accepted=False, reason="not accepted (401)", status=401)
EMPTY = TargetState(value=None, metadata=None)


@dataclass(eq=False)
class MemoryTarget:
    """An in-memory target: the Target Protocol over one :class:`TargetState`."""

    name: str
    state: TargetState = EMPTY

    @property
    def id(self) -> str:
        """``memory:<name>``."""
        return f"memory:{self.name}"

    def describe(self) -> str:
        """One line naming the target."""
        return f"memory target {self.name}"

    def read(self) -> TargetState:
        """The state held."""
        return self.state

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Hold ``value`` with ``metadata``."""
        self.state = TargetState(value, metadata)

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Replace only the metadata."""
        self.state = replace(self.state, metadata=metadata)


@dataclass(frozen=True)
class Unreadable:
    """Stands in a list of states for a target that could not be read."""

    error: str


def listed(key_id: int, created: datetime, expiration: datetime | None) -> ApiKey:
    """A service token of managed key ``agent`` as StackState lists it."""
    return ApiKey(
        kind="service-token",
        id=key_id,
        name=key_name("agent", created),
        description=None,
        expiration=expiration,
        roles=("stackstate-k8s-agent",),
        last_updated=created,
    )


def managed(
    value: Secret, key: ApiKey, rotated_at: datetime | None = None, *, switched: bool = True
) -> TargetState:
    """A target state holding ``value`` with rotator metadata naming ``key``.

    By default the switch-over to it is finished (``switched``), as for a key rotated long ago.
    """
    metadata = KeyMetadata(
        key_id=key.id,
        key_name=key.name,
        kind=key.kind,
        fingerprint=value.fingerprint,
        expires_at=key.expiration,
        rotated_at=rotated_at or key.last_updated or NOW,
        switched=switched,
    )
    return TargetState(value, metadata)


def adopted(value: Secret) -> TargetState:
    """A target state holding a value the rotator did not write (no metadata)."""
    return TargetState(value, None)


def observe(
    *states: TargetState | Unreadable,
    keys: Iterable[ApiKey] | None = (),
    verdicts: Mapping[Secret, VerifyResult] | None = None,
    windows: Sequence[str] = (),
    validity: timedelta = VALIDITY,
    rotate_before: timedelta = ROTATE_BEFORE,
    adopt_key_id: int | None = None,
    list_error: str | None = None,
) -> ObservedKey:
    """The observation of managed key ``agent`` whose targets t1, t2, … hold ``states``."""
    targets = [MemoryTarget(f"t{n}") for n in range(1, len(states) + 1)]
    observations = []
    for target, state in zip(targets, states, strict=True):
        if isinstance(state, Unreadable):
            observations.append(TargetObservation(target, None, state.error))
        else:
            target.state = state
            observations.append(TargetObservation(target, target.read()))
    spec = KeySpec(
        name="agent",
        kind="service-token",
        roles=("stackstate-k8s-agent",),
        description=None,
        dedicated_subject=None,
        validity=validity,
        rotate_before=rotate_before,
        grace_period=timedelta(minutes=5),
        switch_timeout=timedelta(minutes=10),
        orphan_min_age=timedelta(hours=1),
        windows=Windows(windows),
        targets=tuple(targets),
        adopt_key_id=adopt_key_id,
    )
    return ObservedKey(
        spec=spec,
        targets=tuple(observations),
        keys_by_id=None if keys is None else {k.id: k for k in keys},
        verdicts={v.fingerprint: r for v, r in (verdicts or {}).items()},
        list_error=list_error,
    )


def kinds(plan: KeyPlan) -> list[tuple[str, str | None]]:
    """The plan's actions as (action, target) pairs."""
    return [(a.action, a.target) for a in plan.actions]


def rotation(*targets: str) -> list[tuple[str, str | None]]:
    """The actions of a rotation or bootstrap that pushes to ``targets`` in order."""
    return [("create", None), ("verify", None)] + [("push", f"memory:{t}") for t in targets]


#: A fresh key of ``agent``: created 30 days ago, expires in 60.
FRESH = listed(1, NOW - 30 * DAY, NOW + 60 * DAY)
#: A key of ``agent`` that is due: created 80 days ago, expires in 10.
DUE = listed(2, NOW - 80 * DAY, NOW + 10 * DAY)


def test_memory_target_satisfies_the_target_protocol() -> None:
    """The test double implements the Target Protocol the planner's inputs refer to."""
    assert isinstance(MemoryTarget("t1"), Target)


class TestPlanKey:
    """plan_key follows the decision procedure in the plan module's docstring."""

    # -- 1. an incomplete picture ------------------------------------------------------------

    def test_failed_listing_blocks_and_fails(self) -> None:
        """When StackState could not be listed the plan is blocked, failed and empty."""
        plan = plan_key(observe(managed(VALUE_A, FRESH), keys=None, list_error="503"), NOW)
        assert (plan.decision, plan.failed, plan.actions) == ("blocked", True, ())
        assert "cannot list service-token keys" in plan.reason
        assert "503" in plan.reason

    def test_unreadable_target_blocks_and_fails_naming_the_target(self) -> None:
        """When one target cannot be read the plan is blocked and failed, naming that target."""
        observed = observe(managed(VALUE_A, FRESH), Unreadable("permission denied"), keys=[FRESH])
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.failed, plan.actions) == ("blocked", True, ())
        assert "memory target t2" in plan.reason
        assert "permission denied" in plan.reason

    # -- 2. nothing there yet ----------------------------------------------------------------

    def test_all_targets_empty_bootstraps(self) -> None:
        """With no value anywhere, a key is created, verified and pushed to each target in order."""
        plan = plan_key(observe(EMPTY, EMPTY, EMPTY, keys=[]), NOW)
        assert plan.decision == "bootstrap"
        assert kinds(plan) == rotation("t1", "t2", "t3")
        assert plan.new_key_name is not None
        assert re.fullmatch(r"agent-20261124T120000Z-[0-9a-f]{4}", plan.new_key_name)
        assert (plan.current, plan.failed) == (None, False)

    # -- 4. targets agree ----------------------------------------------------------------------

    def test_fresh_managed_value_is_ok(self) -> None:
        """A managed value everywhere whose key is far from expiry needs nothing."""
        plan = plan_key(
            observe(managed(VALUE_A, FRESH), managed(VALUE_A, FRESH), keys=[FRESH]), NOW
        )
        assert (plan.decision, plan.actions, plan.failed) == ("ok", (), False)
        assert plan.current == CurrentKey(1, FRESH.name, FRESH.expiration, adopted=False)
        assert "expires in 60d" in plan.reason

    def test_value_within_rotate_before_rotates(self) -> None:
        """A managed value whose key expires within rotate_before is rotated on every target."""
        plan = plan_key(observe(managed(VALUE_A, DUE), managed(VALUE_A, DUE), keys=[DUE]), NOW)
        assert plan.decision == "rotate"
        assert kinds(plan) == rotation("t1", "t2")
        assert plan.current == CurrentKey(2, DUE.name, DUE.expiration)
        assert "expires in 10d" in plan.reason

    def test_key_expiring_in_20_days_rotates_on_day_6_not_before(self) -> None:
        """A key expiring in 20 days with rotate_before 14d is left alone until day 6."""
        created = datetime(2026, 11, 2, tzinfo=UTC)
        key = listed(3, created, created + 20 * DAY)
        observed = observe(managed(VALUE_A, key), keys=[key])
        decisions = {day: plan_key(observed, created + day * DAY).decision for day in range(7)}
        assert decisions == {0: "ok", 1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok", 6: "rotate"}

    def test_expired_key_rotates_outside_windows(self) -> None:
        """An expired key is replaced at once, even outside the maintenance windows."""
        expired = listed(4, NOW - 95 * DAY, NOW - 5 * DAY)
        observed = observe(managed(VALUE_A, expired), keys=[expired], windows=WEEKDAY_NIGHTS)
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        assert kinds(plan) == rotation("t1")
        assert f"key {expired.name} expired 5d ago" in plan.reason

    def test_key_missing_from_stackstate_rotates_outside_windows(self) -> None:
        """A value whose key StackState no longer lists is replaced at once, windows or not."""
        deleted = listed(9, NOW - 30 * DAY, NOW + 60 * DAY)
        observed = observe(managed(VALUE_A, deleted), keys=[FRESH], windows=WEEKDAY_NIGHTS)
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        # FRESH is listed under agent's name but referenced by no target: swept as an orphan.
        assert kinds(plan) == [*rotation("t1"), ("sweep", "service-token:1")]
        assert "key 9 no longer exists in StackState" in plan.reason
        assert plan.current == CurrentKey(9, deleted.name, None)

    def test_key_of_the_former_kind_is_named_as_such(self) -> None:
        """After ``kind`` changed, the held key is not "gone": it is of the other kind (listed
        as that kind, not this run's), and a key of the configured kind replaces it."""
        ingestion = replace(listed(9, NOW - 30 * DAY, NOW + 60 * DAY), kind="ingestion-api-key")
        observed = observe(managed(VALUE_A, ingestion), keys=[], windows=WEEKDAY_NIGHTS)
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        expected = "key 9 is of kind ingestion-api-key; the managed key is now service-token"
        assert expected in plan.reason
        assert "no longer exists" not in plan.reason

    def test_accepted_adopted_value_waits_for_a_window(self) -> None:
        """An accepted adopted value is replaced only inside a window: outside it waits."""
        observed = observe(
            adopted(VALUE_C), keys=[], verdicts={VALUE_C: ACCEPTED}, windows=WEEKDAY_NIGHTS
        )
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.actions, plan.failed) == ("blocked", (), False)
        assert plan.reason.startswith("adopted value (not created by the rotator)")
        assert "waiting for a maintenance window" in plan.reason

    def test_accepted_adopted_value_rotates_inside_a_window(self) -> None:
        """An accepted adopted value is replaced on the first run inside a window."""
        observed = observe(
            adopted(VALUE_C), keys=[], verdicts={VALUE_C: ACCEPTED}, windows=WEEKDAY_NIGHTS
        )
        plan = plan_key(observed, NIGHT)
        assert plan.decision == "rotate"
        assert kinds(plan) == rotation("t1")
        assert plan.reason.startswith("adopted value (not created by the rotator)")
        assert "inside a maintenance window" in plan.reason
        assert plan.current == CurrentKey(None, None, None, adopted=True)

    def test_rejected_adopted_value_rotates_outside_windows(self) -> None:
        """An adopted value StackState does not accept is replaced at once, windows or not."""
        observed = observe(
            adopted(VALUE_D), keys=[], verdicts={VALUE_D: REJECTED}, windows=WEEKDAY_NIGHTS
        )
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        assert kinds(plan) == rotation("t1")
        assert "adopted value not accepted (401)" in plan.reason

    def test_unverified_adopted_value_rotates(self) -> None:
        """An adopted value without a verdict counts as not accepted and is replaced."""
        plan = plan_key(observe(adopted(VALUE_C), keys=[], windows=WEEKDAY_NIGHTS), NOW)
        assert plan.decision == "rotate"
        assert "adopted value could not be verified" in plan.reason

    def test_stale_metadata_makes_the_value_adopted(self) -> None:
        """Metadata describing another value is ignored: the held value is judged as adopted."""
        stale = TargetState(VALUE_C, managed(VALUE_A, FRESH).metadata)
        observed = observe(stale, keys=[FRESH], verdicts={VALUE_C: ACCEPTED})
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        assert plan.current is not None
        assert plan.current.adopted

    def test_adopt_key_id_names_the_current_key(self) -> None:
        """With adopt_key_id set, the adopted value's current key carries that id."""
        observed = observe(adopted(VALUE_C), keys=[], verdicts={VALUE_C: ACCEPTED}, adopt_key_id=42)
        plan = plan_key(observed, NOW)
        assert plan.current == CurrentKey(42, None, None, adopted=True)

    def test_adopt_key_id_of_a_listed_key_takes_its_name_and_expiry(self) -> None:
        """With adopt_key_id naming a listed key, the current key is that listed key."""
        hand_made = replace(FRESH, id=42, name="hand-made-token")
        observed = observe(
            adopted(VALUE_C), keys=[hand_made], verdicts={VALUE_C: ACCEPTED}, adopt_key_id=42
        )
        plan = plan_key(observed, NOW)
        assert plan.current == CurrentKey(42, "hand-made-token", FRESH.expiration, adopted=True)

    def test_force_rotates_a_fresh_key(self) -> None:
        """With force, a key that is not due is rotated, for the reason "forced"."""
        observed = observe(managed(VALUE_A, FRESH), keys=[FRESH])
        plan = plan_key(observed, NOW, force=True)
        assert (plan.decision, plan.reason) == ("rotate", "forced")
        assert kinds(plan) == rotation("t1")

    def test_force_ignores_windows(self) -> None:
        """A forced rotation runs at once, even outside the windows: a person asked for it."""
        observed = observe(managed(VALUE_A, FRESH), keys=[FRESH], windows=WEEKDAY_NIGHTS)
        assert not Windows(WEEKDAY_NIGHTS).contains(NOW)
        plan = plan_key(observed, NOW, force=True)
        assert (plan.decision, plan.reason, plan.failed) == ("rotate", "forced", False)
        assert kinds(plan) == rotation("t1")

    def test_never_expiring_managed_key_is_ok_until_old_enough(self) -> None:
        """A managed key without expiry is kept until it is validity minus rotate_before old."""

        def decision(age: timedelta) -> str:
            key = listed(5, NOW - age, None)
            return plan_key(observe(managed(VALUE_A, key), keys=[key]), NOW).decision

        assert decision(VALIDITY - ROTATE_BEFORE - timedelta(seconds=1)) == "ok"
        assert decision(VALIDITY - ROTATE_BEFORE) == "rotate"

    def test_due_key_outside_a_window_is_blocked_but_not_failed(self) -> None:
        """A due rotation waiting for a window is a blocked plan without actions, not a failure."""
        observed = observe(managed(VALUE_A, DUE), keys=[DUE], windows=WEEKDAY_NIGHTS)
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.actions, plan.failed) == ("blocked", (), False)
        assert plan.new_key_name is None
        assert "expires in 10d" in plan.reason
        assert "waiting for a maintenance window (next window 2026-11-25 02:00Z)" in plan.reason

    def test_due_key_rotates_outside_a_window_when_expiry_is_too_close(self) -> None:
        """A due key that would expire before the next window plus margin rotates now."""
        closing = listed(6, NOW - 89 * DAY, NOW + 12 * timedelta(hours=1))
        observed = observe(managed(VALUE_A, closing), keys=[closing], windows=WEEKDAY_NIGHTS)
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        assert "expiry is too close to wait" in plan.reason

    # -- 3. targets disagree ---------------------------------------------------------------

    def test_disagreeing_targets_are_repaired_from_the_accepted_value(self) -> None:
        """Only the targets not holding the accepted value get it, copied from a holder."""
        observed = observe(
            managed(VALUE_A, FRESH),
            adopted(VALUE_D),
            managed(VALUE_A, FRESH),
            keys=[FRESH],
            verdicts={VALUE_D: REJECTED},
        )
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.targets_agree, plan.new_key_name) == ("repair", False, None)
        assert [(a.action, a.target, a.source and a.source.id) for a in plan.actions] == [
            ("push", "memory:t2", "memory:t1")
        ]
        assert plan.current == CurrentKey(1, FRESH.name, FRESH.expiration)

    def test_repair_copies_the_newest_accepted_value(self) -> None:
        """Of two accepted values, the one written last (metadata rotated_at) wins."""
        older = managed(VALUE_A, DUE, rotated_at=NOW - 80 * DAY)
        newer = managed(VALUE_B, FRESH, rotated_at=NOW - 2 * DAY)
        plan = plan_key(observe(older, newer, EMPTY, keys=[DUE, FRESH]), NOW)
        assert plan.decision == "repair"
        assert [(a.action, a.target, a.source and a.source.id) for a in plan.actions] == [
            ("push", "memory:t1", "memory:t2"),
            ("push", "memory:t3", "memory:t2"),
        ]
        assert plan.current is not None
        assert plan.current.id == FRESH.id

    def test_newest_accepted_value_wins_regardless_of_target_order(self) -> None:
        """The repair source is chosen by rotated_at, not by which target comes first."""
        older = managed(VALUE_A, DUE, rotated_at=NOW - 80 * DAY)
        newer = managed(VALUE_B, FRESH, rotated_at=NOW - 2 * DAY)
        plan = plan_key(observe(newer, older, keys=[DUE, FRESH]), NOW)
        assert [(a.target, a.source and a.source.id) for a in plan.actions] == [
            ("memory:t2", "memory:t1")
        ]

    def test_a_successor_wins_a_tie_on_rotated_at(self) -> None:
        """A rotation in the same second as the previous one (rotated_at has whole seconds),
        killed after its first push: the new value names the old key as its previous one, so it
        is copied to the others, although the old value is in more targets."""
        same = NOW - DAY
        old = managed(VALUE_A, DUE, rotated_at=same)
        new_state = managed(VALUE_B, FRESH, rotated_at=same)
        assert new_state.metadata is not None
        new = replace(new_state, metadata=replace(new_state.metadata, previous_key_id=DUE.id))
        plan = plan_key(observe(new, old, old, keys=[DUE, FRESH]), NOW)
        assert plan.decision == "repair"
        assert [(a.target, a.source and a.source.id) for a in plan.actions] == [
            ("memory:t2", "memory:t1"),
            ("memory:t3", "memory:t1"),
        ]

    def test_disagreeing_targets_without_an_accepted_value_rotate(self) -> None:
        """When the targets disagree and StackState accepts none of their values, rotate."""
        observed = observe(
            adopted(VALUE_D),
            adopted(VALUE_E),
            keys=[],
            verdicts={VALUE_D: REJECTED, VALUE_E: REJECTED},
            windows=WEEKDAY_NIGHTS,
        )
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.targets_agree, plan.current) == ("rotate", False, None)
        assert kinds(plan) == rotation("t1", "t2")

    def test_one_empty_target_is_repaired(self) -> None:
        """When one target is empty and the others agree, the value is copied to it."""
        observed = observe(managed(VALUE_A, FRESH), EMPTY, managed(VALUE_A, FRESH), keys=[FRESH])
        plan = plan_key(observed, NOW)
        assert plan.decision == "repair"
        assert [(a.action, a.target, a.source and a.source.id) for a in plan.actions] == [
            ("push", "memory:t2", "memory:t1")
        ]
        assert VALUE_A.fingerprint in plan.actions[0].detail

    def test_plans_never_show_a_value(self) -> None:
        """Reasons and action details name fingerprints and keys, never a held value."""
        observed = observe(
            managed(VALUE_A, DUE), adopted(VALUE_C), keys=[DUE], verdicts={VALUE_C: ACCEPTED}
        )
        plan = plan_key(observed, NOW)
        text = repr(plan)
        for value in (VALUE_A, VALUE_C):
            assert value.reveal() not in text


class TestNewKeyName:
    """new_key_name picks ``<managed>-<timestamp>-<nonce>`` unique among the listed keys."""

    def test_carries_the_current_second_and_a_nonce(self) -> None:
        """The name is the managed name, the current UTC second and four lowercase hex digits."""
        name = new_key_name(observe(EMPTY, keys=[FRESH]), NOW)
        assert re.fullmatch(r"agent-20261124T120000Z-[0-9a-f]{4}", name)
        assert parse_key_name(name) == ManagedName("agent", NOW, name[-4:])

    def test_one_process_names_one_moment_the_same_way(self) -> None:
        """Within one process the action text and the plan's new_key_name agree."""
        plan = plan_key(observe(EMPTY, EMPTY, keys=[]), NOW)
        assert plan.new_key_name is not None
        assert plan.actions[0].detail.startswith(f"service-token {plan.new_key_name},")
        assert new_key_name(observe(EMPTY, keys=[]), NOW) == plan.new_key_name

    def test_two_processes_name_the_same_second_differently(self) -> None:
        """Two salts (two hosts) give two names for the same key in the same second."""
        names = {new_key_name(observe(EMPTY, keys=[]), NOW, salt=bytes([n]) * 16) for n in range(8)}
        assert len(names) > 1
        assert all(name.startswith("agent-20261124T120000Z-") for name in names)

    def test_never_reuses_a_listed_name(self) -> None:
        """A name StackState already lists (this second, this nonce) is not picked again."""
        salt = b"s" * 16
        first = new_key_name(observe(EMPTY, keys=[]), NOW, salt=salt)
        taken = replace(FRESH, id=7, name=first)
        second = new_key_name(observe(EMPTY, keys=[taken]), NOW, salt=salt)
        assert second != first
        assert second.startswith("agent-20261124T120000Z-")

    def test_moves_past_names_of_the_same_second_without_a_nonce(self) -> None:
        """Names of an older version (no nonce) in the same second do not clash."""
        same_second = listed(7, NOW, NOW + VALIDITY)
        observed = observe(managed(VALUE_A, same_second), keys=[same_second])
        plan = plan_key(observed, NOW, force=True)
        assert plan.new_key_name is not None
        assert plan.new_key_name != same_second.name
        assert plan.actions[0].detail.startswith(f"service-token {plan.new_key_name},")

    def test_ignores_names_of_other_managed_keys(self) -> None:
        """A key of another managed name created in the same second does not matter."""
        other = replace(FRESH, id=11, name=key_name("agent-prod", NOW))
        name = new_key_name(observe(EMPTY, keys=[other]), NOW)
        assert re.fullmatch(r"agent-20261124T120000Z-[0-9a-f]{4}", name)


# -- properties ------------------------------------------------------------------------------

#: Per-target states for the property test: empty, two listed managed values (A due, B fresh),
#: an adopted value StackState accepts (C) and one it refuses (D).
STATES: dict[str, TargetState] = {
    "empty": EMPTY,
    "A": managed(VALUE_A, DUE, rotated_at=NOW - 80 * DAY),
    "B": managed(VALUE_B, FRESH, rotated_at=NOW - 30 * DAY),
    "C": adopted(VALUE_C),
    "D": adopted(VALUE_D),
}
ACCEPTED_FINGERPRINTS = {VALUE_A.fingerprint, VALUE_B.fingerprint, VALUE_C.fingerprint}


class TestPlanKeySafety:
    """Whatever the targets hold, plan_key never plans an unsafe action."""

    @given(
        held=st.lists(st.sampled_from(sorted(STATES)), min_size=1, max_size=5),
        windows=st.sampled_from([(), WEEKDAY_NIGHTS]),
        now=st.sampled_from([NOW, NIGHT]),
        force=st.booleans(),
    )
    def test_plans_are_safe_for_any_mix_of_states(
        self, held: list[str], windows: tuple[str, ...], now: datetime, force: bool
    ) -> None:
        """No revoke, no push of a refused value, and rotations push to every target once."""
        observed = observe(
            *(STATES[name] for name in held),
            keys=[DUE, FRESH],
            verdicts={VALUE_C: ACCEPTED, VALUE_D: REJECTED},
            windows=windows,
        )
        full = plan_key(observed, now, force=force)
        # Sweeps ride along any plan; they may only delete keys no target references.
        referenced = {
            m.key_id
            for obs in observed.targets
            if obs.state is not None and (m := obs.state.managed_metadata) is not None
        }
        sweeps = [a for a in full.actions if a.action == "sweep"]
        assert all(int(str(a.target).rpartition(":")[2]) not in referenced for a in sweeps)
        plan = replace(full, actions=tuple(a for a in full.actions if a.action != "sweep"))
        target_ids = [obs.target.id for obs in observed.targets]
        held_by = {obs.target.id: obs.fingerprint for obs in observed.targets}
        pushes = [a for a in plan.actions if a.action == "push"]

        assert all(a.action != "revoke" for a in plan.actions)
        assert not plan.failed
        if plan.decision in ("bootstrap", "rotate"):
            assert kinds(plan)[:2] == [("create", None), ("verify", None)]
            assert Counter(a.target for a in pushes) == Counter(target_ids)
            assert len(pushes) == len(plan.actions) - 2
            assert plan.new_key_name is not None
        elif plan.decision == "repair":
            assert pushes == list(plan.actions)
            sources = {a.source.id for a in pushes if a.source is not None}
            assert len(sources) == 1
            (source,) = sources
            assert source in held_by
            assert held_by[source] in ACCEPTED_FINGERPRINTS
            assert all(held_by[a.target] != held_by[source] for a in pushes if a.target)
            assert Counter(a.target for a in pushes) == Counter(
                t for t in target_ids if held_by[t] != held_by[source]
            )
        else:
            assert plan.decision in ("ok", "blocked")
            assert plan.actions == ()
