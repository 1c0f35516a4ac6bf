"""The planner's switch-over, revocation and sweep decisions (engine.plan).

Consumers are :class:`FixedConsumer` instances, a minimal implementation of the Consumer
Protocol; the planner only reads the :class:`SwitchState` values carried by each
:class:`ConsumerObservation`, exactly as the observe step hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from rotator.consumers.base import Consumer, Resolution, SwitchRequest, SwitchState
from rotator.engine.model import ConsumerObservation, KeyRef, ObservedKey
from rotator.engine.naming import key_name
from rotator.engine.plan import plan_key, sweep_actions
from rotator.keytypes import ApiKey
from rotator.targets.base import KeyMetadata, TargetState
from tests.engine.test_plan import DAY, FRESH, NOW, VALUE_A, adopted, listed, managed, observe

PREVIOUS = listed(7, NOW - 100 * DAY, NOW + 2 * DAY)
FOREIGN = ApiKey("service-token", 99, "hand-made-token", None, None, ("r",), NOW - 400 * DAY)


@dataclass(frozen=True)
class FixedConsumer:
    """A consumer whose observations are given; it is never asked to act by the planner."""

    name: str

    @property
    def id(self) -> str:
        """``fixed:<name>``."""
        return f"fixed:{self.name}"

    def describe(self) -> str:
        """One line."""
        return self.id

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """Listed as a restart in rotation plans."""
        return "restart"

    def resolve(self) -> Resolution:
        """Nothing to resolve."""
        return Resolution(self.id)

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """Not used by the planner."""
        raise AssertionError("the planner never observes")

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Not used by the planner."""
        raise AssertionError("the planner never triggers")


def pending_switch(
    *phases: str,
    rotated_ago: timedelta = timedelta(minutes=2),
    switched_at: timedelta | None = None,
    previous: ApiKey | None = PREVIOUS,
    previous_revoked: bool = False,
    extra_keys: Sequence[ApiKey] = (),
) -> ObservedKey:
    """Two targets holding VALUE_A (key FRESH), pushed ``rotated_ago``, consumers in ``phases``."""
    metadata = KeyMetadata(
        key_id=FRESH.id,
        key_name=FRESH.name,
        kind="service-token",
        fingerprint=VALUE_A.fingerprint,
        expires_at=FRESH.expiration,
        rotated_at=NOW - rotated_ago,
        previous_key_id=previous.id if previous else None,
        previous_key_name=previous.name if previous else None,
        previous_revoked=previous_revoked,
        switched_at=None if switched_at is None else NOW - switched_at,
    )
    state = TargetState(VALUE_A, metadata)
    keys = [FRESH, *([previous] if previous else []), *extra_keys]
    observed = observe(state, state, keys=keys)
    consumers = tuple(
        ConsumerObservation(
            FixedConsumer(f"c{n}"),
            (SwitchState(f"fixed:c{n}", phase, f"phase {phase}"),),  # type: ignore[arg-type]
        )
        for n, phase in enumerate(phases, start=1)
    )
    return replace(observed, consumers=consumers)


def test_fixed_consumer_satisfies_the_consumer_protocol() -> None:
    """The test double implements the Consumer Protocol."""
    assert isinstance(FixedConsumer("c"), Consumer)


class TestSwitchOver:
    """While the switch-over to the held value is unfinished, the planner drives it."""

    def test_consumers_needing_a_trigger_are_restarted(self) -> None:
        """needs-trigger becomes a restart action, pending an await; decision switch."""
        plan = plan_key(pending_switch("needs-trigger", "pending", "switched"), NOW)
        assert plan.decision == "switch"
        assert [(a.action, a.target) for a in plan.actions] == [
            ("restart", "fixed:c1"),
            ("await", "fixed:c2"),
        ]
        assert not plan.failed

    def test_blocked_revocation_names_the_consumer_and_why(self) -> None:
        """The reason names the first consumer not switched and its evidence."""
        plan = plan_key(pending_switch("switched", "pending"), NOW)
        assert "fixed:c2: phase pending" in plan.reason
        assert f"previous key {PREVIOUS.name} kept" in plan.reason

    def test_failed_consumer_blocks_and_fails_without_revoking(self) -> None:
        """A failed consumer makes the key fail and keeps the previous key."""
        plan = plan_key(pending_switch("switched", "failed"), NOW)
        assert (plan.decision, plan.failed) == ("blocked", True)
        assert all(a.action != "revoke" for a in plan.actions)
        assert "consumer fixed:c2 failed" in plan.reason

    def test_switch_timeout_fails_and_keeps_the_previous_key(self) -> None:
        """Consumers still pending after switch_timeout fail the key; nothing is revoked."""
        plan = plan_key(pending_switch("pending", rotated_ago=timedelta(minutes=11)), NOW)
        assert (plan.decision, plan.failed) == ("blocked", True)
        assert plan.reason.startswith("switch_timeout")
        assert plan.actions == ()

    def test_unobservable_consumer_blocks(self) -> None:
        """A consumer that could not be read blocks the key (failed)."""
        observed = pending_switch("switched")
        broken = ConsumerObservation(FixedConsumer("x"), error="forbidden")
        plan = plan_key(replace(observed, consumers=(broken,)), NOW)
        assert (plan.decision, plan.failed) == ("blocked", True)
        assert "forbidden" in plan.reason

    def test_grace_period_starts_when_all_switched(self) -> None:
        """All switched but no switch time recorded: wait for the grace period (await)."""
        plan = plan_key(pending_switch("switched", "switched"), NOW)
        assert plan.decision == "switch"
        assert [a.action for a in plan.actions] == ["await"]
        assert "grace period until" in plan.reason

    def test_revoke_after_grace_deletes_the_previous_key(self) -> None:
        """All switched and grace over: revoke the previous key by id."""
        plan = plan_key(pending_switch("switched", switched_at=timedelta(minutes=6)), NOW)
        assert plan.decision == "revoke"
        assert [(a.action, a.target) for a in plan.actions] == [
            ("revoke", f"service-token:{PREVIOUS.id}")
        ]

    def test_previous_key_of_another_kind_is_revoked_as_that_kind(self) -> None:
        """After kind moved from ingestion keys to service tokens, the previous key is deleted
        as an ingestion key (the current kind would leave it live and call it revoked)."""
        observed = pending_switch(switched_at=timedelta(hours=1))
        moved = tuple(
            replace(
                t,
                state=replace(
                    t.state,
                    metadata=replace(t.state.metadata, previous_kind="ingestion-api-key"),
                ),
            )
            for t in observed.targets
            if t.state is not None and t.state.metadata is not None
        )
        plan = plan_key(replace(observed, targets=moved), NOW)
        assert plan.decision == "revoke"
        (action,) = plan.actions
        assert action.subject == KeyRef("ingestion-api-key", PREVIOUS.id)
        assert action.target == f"ingestion-api-key:{PREVIOUS.id}"

    def test_no_consumers_revokes_after_grace(self) -> None:
        """A key without consumers is switched vacuously and revoked after the grace period."""
        plan = plan_key(pending_switch(switched_at=timedelta(minutes=5)), NOW)
        assert plan.decision == "revoke"

    def test_previous_key_not_created_by_the_rotator_is_never_deleted(self) -> None:
        """A previous key with a foreign name protects nothing: the switch completes (never
        "revoked"), nothing is deleted, and the reason reminds that it may still be live."""
        plan = plan_key(
            pending_switch("switched", switched_at=timedelta(hours=1), previous=FOREIGN), NOW
        )
        assert plan.decision == "switch"
        assert plan.completes_switch
        assert [(a.action, a.target) for a in plan.actions] == [("await", None)]
        assert plan.reason.startswith("switch complete; no previous key")
        assert "not created by the rotator" in plan.reason

    def test_bootstrap_switch_completes_without_a_grace_period(self) -> None:
        """With no previous key at all, the switch completes as soon as consumers switched."""
        plan = plan_key(
            pending_switch("switched", rotated_ago=timedelta(seconds=5), previous=None), NOW
        )
        assert (plan.decision, plan.completes_switch) == ("switch", True)
        assert "revoke" not in plan.reason

    def test_due_rotation_is_not_held_back_by_a_switch_with_nothing_to_protect(self) -> None:
        """--force rotates at once after a bootstrap, even while its consumers still roll."""
        plan = plan_key(pending_switch("pending", previous=None), NOW, force=True)
        assert plan.decision == "rotate"
        assert any(a.action == "create" for a in plan.actions)

    def test_force_waits_for_an_unfinished_switch(self) -> None:
        """--force does not start a new rotation while consumers may use the previous key: it
        is reported blocked (category wait) and why, never silently "waiting"."""
        plan = plan_key(pending_switch("pending"), NOW, force=True)
        assert plan.decision == "blocked"
        assert plan.failure is not None
        assert (plan.failure.step, plan.failure.category) == ("switch", "wait")
        assert "not forced" in plan.reason
        assert all(a.action != "create" for a in plan.actions)

    def test_finished_switch_is_ok(self) -> None:
        """With ``switched`` recorded the key is simply ok: nothing restarted again."""
        plan = plan_key(observe(managed(VALUE_A, FRESH), keys=[FRESH]), NOW)
        assert (plan.decision, plan.actions) == ("ok", ())


class TestSweep:
    """Orphans: keys named like the managed key that no target references."""

    def orphan(self, key_id: int, age: timedelta) -> ApiKey:
        """A key of ``agent`` created ``age`` ago."""
        return listed(key_id, NOW - age, NOW + 30 * DAY)

    def test_old_unreferenced_key_is_swept(self) -> None:
        """An unreferenced managed-name key older than orphan_min_age is deleted."""
        orphan = self.orphan(50, timedelta(hours=2))
        observed = observe(managed(VALUE_A, FRESH), keys=[FRESH, orphan])
        actions = sweep_actions(observed, NOW)
        assert [(a.action, a.target) for a in actions] == [("sweep", "service-token:50")]
        assert ("sweep", "service-token:50") in [
            (a.action, a.target) for a in plan_key(observed, NOW).actions
        ]

    def test_young_orphan_is_left_for_a_concurrent_run(self) -> None:
        """An orphan younger than orphan_min_age is kept."""
        observed = observe(
            managed(VALUE_A, FRESH), keys=[FRESH, self.orphan(51, timedelta(minutes=5))]
        )
        assert sweep_actions(observed, NOW) == ()

    def test_foreign_and_other_managed_names_are_never_swept(self) -> None:
        """Keys whose names do not match this managed key stay, however old."""
        other = ApiKey(
            "service-token", 60, key_name("agent-prod", NOW - 9 * DAY), None, None, ("r",), None
        )
        observed = observe(managed(VALUE_A, FRESH), keys=[FRESH, FOREIGN, other])
        assert sweep_actions(observed, NOW) == ()

    def test_previous_key_pending_revocation_is_not_an_orphan(self) -> None:
        """The previous key of an unfinished switch-over is referenced, not swept."""
        observed = pending_switch("pending", rotated_ago=timedelta(hours=3))
        assert sweep_actions(observed, NOW) == ()

    def test_no_sweep_while_a_target_holds_an_unidentified_value(self) -> None:
        """An adopted value could be any key: nothing is swept."""
        orphan = self.orphan(52, timedelta(days=3))
        observed = observe(adopted(VALUE_A), keys=[FRESH, orphan])
        assert sweep_actions(observed, NOW) == ()

    def test_no_sweep_in_a_failed_plan(self) -> None:
        """A failed plan (listing failed) carries no sweep."""
        observed = observe(managed(VALUE_A, FRESH), keys=None, list_error="boom")
        assert plan_key(observed, NOW).actions == ()
