"""Tests for rotator.metrics: what a run's results do to the Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from rotator.engine.model import CurrentKey, KeyPlan, KeyResult, KeySpec
from rotator.engine.policy import Windows
from rotator.metrics import Metrics, failed_step
from rotator.stackstate import ApiKey

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = KeySpec(
    name="agent",
    kind="service-token",
    roles=("r",),
    description=None,
    dedicated_subject=None,
    validity=timedelta(days=90),
    rotate_before=timedelta(days=14),
    grace_period=timedelta(minutes=10),
    switch_timeout=timedelta(minutes=30),
    orphan_min_age=timedelta(hours=1),
    windows=Windows([]),
    targets=(),
)


def plan(
    decision: str, *, failed: bool = False, reason: str = "r", expires: datetime | None = None
) -> KeyPlan:
    """A plan for ``agent`` whose current key expires at ``expires``."""
    return KeyPlan(
        key="agent",
        kind="service-token",
        decision=decision,  # type: ignore[arg-type]
        reason=reason,
        current=CurrentKey(1, "agent-20260101T000000Z", expires),
        failed=failed,
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value."""
    return metrics.registry.get_sample_value(name, labels)


class TestMetrics:
    """observe_result updates the key metrics."""

    def test_expiry_and_runway(self) -> None:
        """Runway is time to expiry minus switch_timeout + grace + 1h."""
        metrics = Metrics()
        expires = NOW + timedelta(days=2)
        metrics.observe_result(SPEC, KeyResult(plan("ok", expires=expires), "unchanged"), NOW)
        assert sample(metrics, "rotator_key_expiry_timestamp_seconds", key="agent") == (
            expires.timestamp()
        )
        need = timedelta(minutes=30) + timedelta(minutes=10) + timedelta(hours=1)
        assert sample(metrics, "rotator_key_rotation_runway_seconds", key="agent") == (
            (timedelta(days=2) - need).total_seconds()
        )
        assert sample(metrics, "rotator_last_success_timestamp_seconds", key="agent") == (
            NOW.timestamp()
        )

    def test_runway_goes_negative_before_expiry(self) -> None:
        """An hour before expiry the runway is already negative: page while the key works."""
        metrics = Metrics()
        result = KeyResult(plan("blocked", expires=NOW + timedelta(hours=1)), "unchanged")
        metrics.observe_result(SPEC, result, NOW)
        runway = sample(metrics, "rotator_key_rotation_runway_seconds", key="agent")
        assert runway is not None and runway < 0

    def test_rotation_results_and_failed_steps_are_counted(self) -> None:
        """A successful rotation and a failed push count; the new key's expiry is used."""
        metrics = Metrics()
        new = ApiKey("service-token", 2, "agent-x", None, NOW + timedelta(days=90), ("r",), NOW)
        metrics.observe_result(SPEC, KeyResult(plan("rotate"), "rotated", new_key=new), NOW)
        failed = KeyResult(plan("rotate"), "failed", "push to vault-kv:x: sealed")
        metrics.observe_result(SPEC, failed, NOW)
        assert sample(metrics, "rotator_rotations_total", key="agent", result="success") == 1
        assert sample(metrics, "rotator_rotations_total", key="agent", result="failed") == 1
        assert sample(metrics, "rotator_step_failures_total", key="agent", step="push") == 1
        assert sample(metrics, "rotator_key_expiry_timestamp_seconds", key="agent") == (
            new.expiration.timestamp() if new.expiration else None
        )

    def test_switch_duration_is_observed(self) -> None:
        """A revocation records how long the switch-over took."""
        metrics = Metrics()
        result = KeyResult(plan("revoke"), "revoked", switch_duration=timedelta(seconds=90))
        metrics.observe_result(SPEC, result, NOW)
        assert sample(metrics, "rotator_consumer_switch_seconds_count", key="agent") == 1
        assert sample(metrics, "rotator_consumer_switch_seconds_sum", key="agent") == 90
        assert b"rotator_consumer_switch_seconds_bucket" in generate_latest(metrics.registry)


class TestFailedStep:
    """Which step a failure is attributed to."""

    def test_steps_from_errors_and_plans(self) -> None:
        """Errors name their step; failed plans are observe or switch failures."""
        cases = {
            ("rotate", False, "create: server error 500"): "create",
            ("rotate", False, "verify: new key not accepted"): "verify",
            ("switch", False, "consumer x: paused"): "switch",
            ("revoke", False, "revoke 5: timeout"): "revoke",
            ("blocked", True, "cannot read target"): "observe",
            ("blocked", True, "switch_timeout: 1 consumer"): "switch",
        }
        for (decision, plan_failed, text), step in cases.items():
            result = KeyResult(
                plan(decision, failed=plan_failed, reason=text),
                "failed",
                None if plan_failed else text,
            )
            assert failed_step(result) == step, text
