"""Tests for rotator.notify: which alerts a managed key's result raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.config import AlertEvent
from rotator.engine.model import CurrentKey, KeyPlan, KeyResult
from rotator.notify import alerts_for, config_invalid, config_recovered
from rotator.stackstate import ApiKey

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
) -> KeyResult:
    """A result of managed key ``agent`` whose current key expires at ``expires``."""
    plan = KeyPlan(
        "agent",
        "service-token",
        decision,
        reason,  # type: ignore[arg-type]
        CurrentKey(1, "agent-1", expires),
        failed=failed,
    )
    return KeyResult(plan, outcome, error, new_key)  # type: ignore[arg-type]


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

    def test_failure_names_its_step(self) -> None:
        """A failed push raises rotation_failed with step push."""
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 60 * timedelta(days=1),
                error="push to x: sealed",
                decision="rotate",
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        (failed,) = [a for a in found if a.event == AlertEvent.ROTATION_FAILED]
        assert failed.step == "push"
        assert failed.error == "push to x: sealed"

    def test_switch_timeout_has_its_own_event(self) -> None:
        """A failed plan whose reason is switch_timeout raises switch_timeout."""
        found = alerts_for(
            result(
                "failed",
                expires=NOW + 30 * timedelta(days=1),
                decision="blocked",
                failed=True,
                reason="switch_timeout: 1 consumer(s) not switched",
            ),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        assert ("switch_timeout", None) in events(found)

    def test_expiring_and_expired_unreplaced_keys(self) -> None:
        """Inside alert_before: key_expiring; past expiry: key_expired."""
        soon = alerts_for(
            result("unchanged", expires=NOW + timedelta(days=3)),
            alert_before=WEEK,
            now=NOW,
            run_id="r1",
        )
        gone = alerts_for(
            result(
                "failed", expires=NOW - timedelta(hours=1), error="create: 500", decision="rotate"
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


class TestConfigAlerts:
    """Configuration reload alerts."""

    def test_invalid_and_recovered_share_the_config_incident(self) -> None:
        """config_invalid opens the config class; config_recovered resolves it."""
        opened = config_invalid("bad", now=NOW, run_id="r")
        closed = config_recovered(now=NOW, run_id="r")
        assert opened.dedup_key == closed.dedup_key
        assert (opened.error, closed.resolves) == ("bad", "config")
