"""The planner for a suspended key (``suspend: true``) and for ``rotate --emergency``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from rotator.engine.model import ObservedKey
from rotator.engine.plan import plan_key
from rotator.targets.base import KeyMetadata
from tests.engine.test_plan import (
    DAY,
    DUE,
    EMPTY,
    FRESH,
    NOW,
    VALUE_A,
    WEEKDAY_NIGHTS,
    Unreadable,
    kinds,
    listed,
    managed,
    observe,
    rotation,
)
from tests.engine.test_switch import PREVIOUS, pending_switch


def suspended(observed: ObservedKey) -> ObservedKey:
    return replace(observed, spec=replace(observed.spec, suspended=True))


def with_emergency_metadata(observed: ObservedKey) -> ObservedKey:
    """The held metadata as an emergency rotation pushed it."""
    targets = tuple(
        replace(t, state=replace(t.state, metadata=replace(t.state.metadata, emergency=True)))
        for t in observed.targets
        if t.state is not None and t.state.metadata is not None
    )
    return replace(observed, targets=targets)


class TestSuspended:
    def test_a_due_key_is_reported_with_no_action(self) -> None:
        observed = suspended(observe(managed(VALUE_A, DUE), keys=[DUE]))
        plan = plan_key(observed, NOW)
        assert plan.decision == "suspended"
        assert plan.actions == ()
        assert not plan.failed and plan.failure is None
        assert plan.reason.startswith(
            "suspended (suspend: true): nothing is done; otherwise rotate"
        )
        assert plan.current is not None and plan.current.id == DUE.id  # still reported

    def test_not_even_force_or_emergency_acts(self) -> None:
        observed = suspended(observe(managed(VALUE_A, FRESH), keys=[FRESH]))
        for plan in (
            plan_key(observed, NOW, force=True),
            plan_key(observed, NOW, emergency=True),
        ):
            assert (plan.decision, plan.actions, plan.new_key_name) == ("suspended", (), None)

    def test_empty_targets_are_not_bootstrapped(self) -> None:
        plan = plan_key(suspended(observe(EMPTY, keys=[])), NOW)
        assert (plan.decision, plan.actions) == ("suspended", ())
        assert "otherwise bootstrap" in plan.reason

    def test_no_revoke_nor_sweep(self) -> None:
        orphan = listed(5, NOW - 3 * DAY, NOW + 80 * DAY)
        observed = pending_switch("switched", switched_at=timedelta(hours=1), extra_keys=[orphan])
        assert {a.action for a in plan_key(observed, NOW).actions} >= {"revoke", "sweep"}
        plan = plan_key(suspended(observed), NOW)
        assert (plan.decision, plan.actions, plan.completes_switch) == ("suspended", (), False)

    def test_a_switch_timeout_is_not_a_failure_while_suspended(self) -> None:
        observed = pending_switch("pending", rotated_ago=timedelta(hours=1))
        assert plan_key(observed, NOW).failed
        plan = plan_key(suspended(observed), NOW)
        assert (plan.decision, plan.failed) == ("suspended", False)

    def test_an_unreadable_target_is_still_reported_as_failed(self) -> None:
        observed = suspended(observe(managed(VALUE_A, FRESH), Unreadable("403"), keys=[FRESH]))
        plan = plan_key(observed, NOW)
        assert plan.failed and plan.failure is not None and plan.failure.step == "observe"
        assert plan.actions == ()
        assert plan.reason.startswith("suspended; ")


class TestEmergency:
    def test_rotates_a_fresh_key_now_outside_the_windows(self) -> None:
        observed = observe(
            managed(VALUE_A, FRESH), managed(VALUE_A, FRESH), keys=[FRESH], windows=WEEKDAY_NIGHTS
        )
        assert plan_key(observed, NOW).decision == "ok"
        plan = plan_key(observed, NOW, emergency=True)
        assert plan.decision == "rotate"
        assert plan.emergency
        assert kinds(plan) == rotation("t1", "t2")
        assert plan.reason.startswith("EMERGENCY (rotate --emergency): emergency rotation")
        assert plan.warnings[0].startswith("emergency: the previous key is revoked as soon as")
        assert "(5m ignored)" in plan.warnings[0]

    def test_a_plain_plan_is_not_an_emergency(self) -> None:
        plan = plan_key(observe(managed(VALUE_A, DUE), keys=[DUE]), NOW, force=True)
        assert not plan.emergency
        assert not plan.reason.startswith("EMERGENCY")

    def test_revokes_without_grace_once_every_consumer_switched(self) -> None:
        observed = with_emergency_metadata(pending_switch("switched", "switched"))
        plain = plan_key(pending_switch("switched", "switched"), NOW)
        assert plain.decision == "switch" and "grace period until" in plain.reason
        plan = plan_key(observed, NOW)  # a later run (daemon or CLI): the metadata says so
        assert plan.decision == "revoke"
        assert kinds(plan) == [("revoke", f"service-token:{PREVIOUS.id}")]
        assert "revoked without the grace period" in plan.reason

    def test_never_revokes_before_every_consumer_switched(self) -> None:
        for phases in (("switched", "pending"), ("needs-trigger",), ("switched", "failed")):
            plan = plan_key(with_emergency_metadata(pending_switch(*phases)), NOW)
            assert all(a.action != "revoke" for a in plan.actions), phases

    def test_switch_timeout_fails_and_keeps_the_previous_key(self) -> None:
        observed = with_emergency_metadata(
            pending_switch("pending", rotated_ago=timedelta(hours=1))
        )
        plan = plan_key(observed, NOW, emergency=True)
        assert plan.failed
        assert plan.failure is not None and plan.failure.error_type == "SwitchTimeout"
        assert all(a.action != "revoke" for a in plan.actions)

    def test_an_unfinished_switch_over_is_finished_first_without_grace(self) -> None:
        observed = pending_switch("switched", "switched")
        forced = plan_key(observed, NOW, force=True)
        assert forced.decision == "blocked"
        plan = plan_key(observed, NOW, emergency=True)
        assert plan.decision == "revoke"
        assert plan.reason.startswith("EMERGENCY (rotate --emergency): finishing the unfinished")
        assert plan.new_key_name is None
        waiting = plan_key(pending_switch("switched", "pending"), NOW, emergency=True)
        assert waiting.decision == "switch"
        assert all(a.action != "revoke" for a in waiting.actions)

    def test_metadata_round_trip(self) -> None:
        metadata = KeyMetadata(
            key_id=1,
            key_name="agent-x",
            kind="service-token",
            fingerprint=VALUE_A.fingerprint,
            expires_at=None,
            rotated_at=NOW,
            emergency=True,
        )
        assert '"emergency":true' in metadata.to_json()
        assert KeyMetadata.from_json(metadata.to_json()) == metadata
        plain = replace(metadata, emergency=False)
        assert "emergency" not in plain.to_json()
        assert KeyMetadata.from_json(plain.to_json()) == plain
