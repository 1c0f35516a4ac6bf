"""Tests for rotator.daemon.notify: which alerts a managed key's result raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.alerts.event import Alert, AlertEvent
from rotator.daemon.notify import alerts_for, config_invalid, config_recovered
from rotator.engine.model import CurrentKey, Failure, KeyPlan, KeyResult
from rotator.errors import Category
from rotator.keytypes import ApiKey
from tests.result_shapes import Shape, messages, shaped, shapes

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def result(
    outcome: str,
    *,
    expires: datetime | None,
    reason: str = "r",
    error: str | None = None,
    new_key: ApiKey | None = None,
    decision: str = "ok",
    failed: bool = False,
    failure: Failure | None = None,
    plan_failure: Failure | None = None,
) -> KeyResult:
    """A result of managed key ``agent`` whose current key expires at ``expires``."""
    plan = KeyPlan(
        "agent",
        "service-token",
        decision,  # type: ignore[arg-type]
        reason,
        CurrentKey(1, "agent-1", expires),
        failed=failed,
        failure=plan_failure,
    )
    return KeyResult(plan, outcome, error, new_key, failure=failure)  # type: ignore[arg-type]


def events(found: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    """(event, resolves) pairs."""
    return [(str(a.event), a.resolves) for a in found]


class TestAlertsFor:
    """Events derived from one result."""

    def test_healthy_key_far_from_expiry_only_resolves(self) -> None:
        """Nothing wrong: only recovered for both classes (dropped if nothing is open)."""
        found = alerts_for(
            result("unchanged", expires=NOW + 60 * timedelta(days=1)),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        assert events(found) == [("recovered", "failure"), ("recovered", "expiry")]

    def test_failure_carries_step_category_and_error_type(self) -> None:
        """A failed push raises rotation_failed with the failure's step, category and type."""
        push = Failure("push", "retry", "TargetUnavailable", "vault-kv:x: sealed")
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 60 * timedelta(days=1),
                error="push to x: sealed",
                decision="rotate",
                failure=push,
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        (failed,) = [a for a in found if a.event == AlertEvent.ROTATION_FAILED]
        assert (failed.step, failed.category, failed.error_type) == (
            "push",
            "retry",
            "TargetUnavailable",
        )
        assert failed.error == "push to x: sealed"
        document = failed.to_document()
        assert (document["step"], document["category"], document["error_type"]) == (
            "push",
            "retry",
            "TargetUnavailable",
        )

    def test_plan_failure_is_used_when_the_result_has_none(self) -> None:
        """A blocked plan's failure names the alert's step and category."""
        owner = Failure("preflight", "human", "ForeignOwner", "Secret rendered by Helm")
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 60 * timedelta(days=1),
                decision="blocked",
                failed=True,
                plan_failure=owner,
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        (failed,) = [a for a in found if a.event == AlertEvent.ROTATION_FAILED]
        assert (failed.step, failed.category) == ("preflight", "human")

    @pytest.mark.parametrize("category", ["wait", "human"])
    def test_switch_timeout_is_told_by_its_step_and_error_type(self, category: Category) -> None:
        """A switch failure of type SwitchTimeout raises switch_timeout, whatever its words."""
        timeout = Failure("switch", category, "SwitchTimeout", "rollout of agent not done")
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 30 * timedelta(days=1),
                decision="blocked",
                failed=True,
                reason="rollout of agent not done",
                plan_failure=timeout,
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        (alert,) = [a for a in found if a.event == AlertEvent.SWITCH_TIMEOUT]
        assert (alert.step, alert.category, alert.error_type) == (
            "switch",
            category,
            "SwitchTimeout",
        )

    def test_a_reason_that_reads_like_a_timeout_is_not_one(self) -> None:
        """A switch failure of another type is rotation_failed, though its text says timeout."""
        blocked = Failure("switch", "human", "ConsumerFailed", "switch_timeout: 1 consumer")
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 30 * timedelta(days=1),
                decision="blocked",
                failed=True,
                reason="switch_timeout: 1 consumer(s) not switched",
                plan_failure=blocked,
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        assert ("rotation_failed", None) in events(found)
        assert ("switch_timeout", None) not in events(found)

    def test_expiring_and_expired_unreplaced_keys(self) -> None:
        """Inside alert_before: key_expiring; past expiry: key_expired."""
        soon = alerts_for(
            result("unchanged", expires=NOW + timedelta(days=3)),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        create = Failure("create", "retry", "StackStateServerError", "500")
        gone = alerts_for(
            result(
                "failed",
                expires=NOW - timedelta(hours=1),
                error="create: 500",
                decision="rotate",
                failure=create,
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        assert ("key_expiring", None) in events(soon)
        assert ("key_expired", None) in events(gone)

    def test_a_replaced_key_resolves_expiry_and_reports_success(self) -> None:
        """A rotation that pushed a new key resolves expiry alerts and says it succeeded."""
        new = ApiKey("service-token", 2, "agent-2", None, NOW + 90 * timedelta(days=1), ("r",), NOW)
        found = alerts_for(
            result("rotated", expires=NOW + timedelta(days=2), new_key=new, decision="rotate"),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        assert events(found) == [
            ("recovered", "failure"),
            ("recovered", "expiry"),
            ("rotation_succeeded", None),
        ]
        assert found[-1].key_id == 2


def facts(found: list[Alert]) -> list[tuple[object, ...]]:
    """Everything about alerts that hooks route, group and resolve on: no message text."""
    return [
        (a.event, a.step, a.category, a.error_type, a.resolves, a.dedup_key, a.severity)
        for a in found
    ]


class TestEventsIgnoreMessages:
    """Rewording messages changes no alert event: events come from the failure's fields."""

    # No deadline: the 2-core CI machine runs other tests beside these.
    @settings(deadline=None)
    @given(
        shape=shapes,
        first=messages,
        second=messages,
        days_left=st.integers(min_value=-2, max_value=60),
    )
    def test_rewording_every_message_changes_no_alert(
        self, shape: Shape, first: str, second: str, days_left: int
    ) -> None:
        """Two results of equal shape whose messages differ raise the same alerts."""
        expires = NOW + timedelta(days=days_left)
        found = [
            facts(
                alerts_for(
                    shaped(shape, message, expires=expires),
                    alert_before=WEEK,
                    now=NOW,
                    run_id="r1",
                )
            )
            for message in (first, second)
        ]
        assert found[0] == found[1]


class TestConfigAlerts:
    """Configuration reload alerts."""

    def test_invalid_and_recovered_share_the_config_incident(self) -> None:
        """config_invalid opens the config class; config_recovered resolves it."""
        opened = config_invalid("bad", now=NOW, run_id="r")
        closed = config_recovered(now=NOW, run_id="r")
        assert opened.dedup_key == closed.dedup_key
        assert (opened.error, closed.resolves) == ("bad", "config")
