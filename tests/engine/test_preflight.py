"""The planner's preflight (engine.plan): foreign owners, consumers that cannot switch, readers
still on another Secret, and the adoption of the value in use from a chart's Secret.

Observations are built from plain dataclasses (see tests/engine/test_plan.py): the planner is a
pure function, so each rule is checked without any server.
"""

from __future__ import annotations

from dataclasses import replace

from rotator.consumers.base import Reader, Resolution
from rotator.engine.model import ObservedKey, TargetObservation
from rotator.engine.plan import plan_key
from rotator.targets.base import TargetState
from tests.engine.test_plan import (
    ACCEPTED,
    DUE,
    FRESH,
    NOW,
    REJECTED,
    VALUE_A,
    VALUE_C,
    MemoryTarget,
    adopted,
    managed,
    observe,
)

HELM = "Helm release sts (app.kubernetes.io/managed-by: Helm)"


def owned(state: TargetState, *, allowed: bool = False) -> TargetState:
    """``state`` of a target someone else owns."""
    return replace(state, owner=HELM, owner_allowed=allowed)


def with_resolution(observed: ObservedKey, *resolutions: Resolution) -> ObservedKey:
    """``observed`` with these consumer resolutions."""
    return replace(observed, resolutions=resolutions)


def with_source(observed: ObservedKey, state: TargetState) -> ObservedKey:
    """``observed`` whose adopt source (a chart's Secret) holds ``state``."""
    source = MemoryTarget("chart-secret", state)
    return replace(observed, adopt_source=TargetObservation(source, source.read()))


class TestForeignOwner:
    """A target that Helm, Argo CD, Flux or a controller owns is never written unasked."""

    def test_helm_owned_target_blocks_before_anything_is_created(self) -> None:
        """The key is blocked at step preflight, category human, with no action at all."""
        plan = plan_key(observe(owned(adopted(VALUE_C)), verdicts={VALUE_C: ACCEPTED}), NOW)
        assert (plan.decision, plan.failed, plan.actions) == ("blocked", True, ())
        assert plan.failure is not None
        assert (plan.failure.step, plan.failure.category) == ("preflight", "human")
        assert "Helm release sts" in plan.reason
        assert "allow_foreign_owner" in plan.reason

    def test_message_names_the_chart_value_of_the_preset(self) -> None:
        """With a preset's Helm values the fix names the exact --set to use."""
        observed = observe(owned(adopted(VALUE_C)), verdicts={VALUE_C: ACCEPTED})
        observed = replace(
            observed,
            spec=replace(observed.spec, helm_values=(("global.apiKey.fromSecret", "sts-own"),)),
        )
        plan = plan_key(observed, NOW)
        assert "--set global.apiKey.fromSecret=sts-own" in plan.reason

    def test_an_empty_helm_secret_blocks_the_bootstrap_too(self) -> None:
        """Even with no value yet, a chart's Secret is not where the rotator writes."""
        plan = plan_key(observe(owned(TargetState(None, None))), NOW)
        assert plan.decision == "blocked"
        assert not any(a.action == "create" for a in plan.actions)

    def test_allowed_owner_proceeds_with_a_warning(self) -> None:
        """allow_foreign_owner lets the plan go on, saying so in the key's warnings."""
        plan = plan_key(observe(owned(managed(VALUE_A, FRESH), allowed=True), keys=[FRESH]), NOW)
        assert plan.decision == "ok"
        assert any("allow_foreign_owner" in w for w in plan.warnings)


class TestConsumerResolution:
    """Consumers are resolved before a plan creates anything."""

    def test_consumer_that_cannot_switch_holds_a_due_rotation_back(self) -> None:
        """A paused workload blocks a due rotation while the current key still works."""
        observed = with_resolution(
            observe(managed(VALUE_A, DUE), keys=[DUE]),
            Resolution("c", before_create=("Deployment agent: paused",)),
        )
        plan = plan_key(observed, NOW, force=True)
        assert (plan.decision, plan.failed, plan.actions) == ("blocked", True, ())
        assert plan.failure is not None
        assert plan.failure.step == "preflight"
        assert "paused" in plan.reason

    def test_expired_current_key_rotates_anyway_and_warns(self) -> None:
        """Ingestion fails anyway with a refused key: rotate and report the consumer problem."""
        observed = with_resolution(
            observe(adopted(VALUE_C), verdicts={VALUE_C: REJECTED}),
            Resolution("c", before_create=("Deployment agent: paused",)),
        )
        plan = plan_key(observed, NOW)
        assert plan.decision == "rotate"
        assert any(a.action == "create" for a in plan.actions)
        assert any("paused" in w for w in plan.warnings)

    def test_no_reader_blocks_every_step(self) -> None:
        """Zero discovered readers is blocked, never "all 0 consumers switched"."""
        observed = with_resolution(
            observe(managed(VALUE_A, FRESH, switched=False), keys=[FRESH]),
            Resolution("d", blocking=("no Deployment reads Secret x",)),
        )
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.failed) == ("blocked", True)
        assert not any(a.action in ("revoke", "sweep", "create") for a in plan.actions)

    def test_discovered_readers_are_listed_with_how_they_read(self) -> None:
        """The plan carries every reader and restarts each by its own id."""
        readers = (
            Reader("kubernetes-workload:c/ns/DaemonSet/node", "container a: env K (secretKeyRef)"),
            Reader("kubernetes-workload:c/ns/CronJob/job", "envFrom", restarted=False),
        )
        observed = with_resolution(observe(TargetState(None, None)), Resolution("d", readers))
        plan = plan_key(observed, NOW)
        assert plan.decision == "bootstrap"
        assert plan.readers == readers
        assert any("CronJob/job" in w for w in plan.warnings)


class TestAdoption:
    """A preset migrating from a chart's Secret adopts the value in use: no gap, no new key."""

    def test_empty_target_adopts_the_accepted_value_of_the_chart_secret(self) -> None:
        """No target holds a value: copy the chart Secret's value, create nothing."""
        observed = with_source(observe(TargetState(None, None)), adopted(VALUE_C))
        observed = replace(observed, verdicts={VALUE_C.fingerprint: ACCEPTED})
        plan = plan_key(observed, NOW)
        assert plan.decision == "bootstrap"
        assert [(a.action, a.source and a.source.id) for a in plan.actions] == [
            ("push", "memory:chart-secret")
        ]

    def test_adoption_goes_ahead_while_readers_are_still_on_the_chart_secret(self) -> None:
        """Blocked for the migration, but the copy into the rotator's Secret is planned."""
        observed = with_source(observe(TargetState(None, None)), adopted(VALUE_C))
        observed = with_resolution(
            replace(observed, verdicts={VALUE_C.fingerprint: ACCEPTED}),
            Resolution("d", blocking=("2 workload(s) still read the key from another Secret",)),
        )
        plan = plan_key(observed, NOW)
        assert (plan.decision, plan.failed) == ("blocked", True)
        assert [a.action for a in plan.actions] == ["push"]
        assert plan.failure is not None
        assert plan.failure.category == "human"

    def test_refused_chart_value_is_not_adopted(self) -> None:
        """A value StackState refuses is not worth copying: bootstrap creates a key."""
        observed = with_source(observe(TargetState(None, None)), adopted(VALUE_C))
        observed = replace(observed, verdicts={VALUE_C.fingerprint: REJECTED})
        plan = plan_key(observed, NOW)
        assert plan.decision == "bootstrap"
        assert plan.actions[0].action == "create"

    def test_keys_the_chart_secret_holds_are_never_swept(self) -> None:
        """A managed key still held by the chart's Secret is protected from the sweep."""
        old = replace(DUE, id=7, name="agent-20260801T000000Z")
        observed = replace(
            observe(managed(VALUE_A, FRESH), keys=[FRESH, old]), protected_ids=frozenset({7})
        )
        plan = plan_key(observed, NOW)
        assert not any(a.action == "sweep" for a in plan.actions)
        unprotected = plan_key(replace(observed, protected_ids=frozenset()), NOW)
        assert any(a.action == "sweep" for a in unprotected.actions)
