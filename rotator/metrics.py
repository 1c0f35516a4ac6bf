"""Prometheus metrics of the rotator, in a registry of their own (one per service instance).

All key metrics are labelled by managed key. The runway is what to page on: the time left until
the key in use expires, minus the worst-case time a rotation needs (switch_timeout + grace
period + a margin). It goes negative *before* anything breaks, while the old key still works.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rotator.engine.model import KeyResult, KeySpec

#: Added to switch_timeout + grace_period in the runway: a run interval's worth of slack.
RUNWAY_MARGIN = timedelta(hours=1)

#: Steps a failure is attributed to (``rotator_step_failures_total{step}``).
STEPS = ("preflight", "observe", "create", "verify", "push", "restart", "switch", "revoke", "sweep")


def failed_step(result: KeyResult) -> str:
    """The step a failed key stopped at: its ``failure`` (older results: from plan and error)."""
    failure = result.failure or result.plan.failure
    if failure is not None:
        return failure.step
    error = (result.error or "").lower()
    reason = result.plan.reason.lower()
    if result.plan.failed:
        if reason.startswith("switch_timeout") or reason.startswith("consumer"):
            return "switch"
        return "observe"
    for prefix, step in (
        ("create", "create"),
        ("verify", "verify"),
        ("push", "push"),
        ("consumer", "switch"),
        ("recording", "switch"),
        ("revoke", "revoke"),
        ("sweep", "sweep"),
    ):
        if error.startswith(prefix):
            return step
    return "observe"


class Metrics:
    """The metric families, bound to one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.expiry = Gauge(
            "rotator_key_expiry_timestamp_seconds",
            "Expiry of the key in use (Unix time); absent when unknown or never.",
            ["key"],
            registry=r,
        )
        self.runway = Gauge(
            "rotator_key_rotation_runway_seconds",
            "Time to expiry minus the worst-case time a rotation needs; page when negative.",
            ["key"],
            registry=r,
        )
        self.rotations = Counter(
            "rotator_rotations_total",
            "Rotations attempted (bootstrap, rotate, repair), by result.",
            ["key", "result"],
            registry=r,
        )
        self.step_failures = Counter(
            "rotator_step_failures_total",
            "Failed runs of a managed key, by the step that failed.",
            ["key", "step"],
            registry=r,
        )
        self.last_success = Gauge(
            "rotator_last_success_timestamp_seconds",
            "When a run of the managed key last finished without failure (Unix time).",
            ["key"],
            registry=r,
        )
        self.switch_seconds = Histogram(
            "rotator_consumer_switch_seconds",
            "Time from the push of a new value until every consumer switched to it.",
            ["key"],
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
            registry=r,
        )
        self.alerts = Counter(
            "rotator_alerts_sent_total",
            "Alert deliveries by hook and result (sent, failed, suppressed).",
            ["hook", "result"],
            registry=r,
        )
        self.is_leader = Gauge(
            "rotator_is_leader",
            "1 when this replica runs jobs (leader or no election).",
            registry=r,
        )

    def observe_result(self, spec: KeySpec, result: KeyResult, now: datetime) -> None:
        """Update every key metric from one run's result."""
        key = spec.name
        expiration = result.expiration
        if expiration is not None:
            self.expiry.labels(key).set(expiration.timestamp())
            need = spec.switch_timeout + spec.grace_period + RUNWAY_MARGIN
            self.runway.labels(key).set((expiration - now - need).total_seconds())
        if result.plan.decision in ("bootstrap", "rotate", "repair"):
            ok = result.outcome in ("rotated", "planned")
            self.rotations.labels(key, "success" if ok else "failed").inc()
        if result.outcome == "failed":
            self.step_failures.labels(key, failed_step(result)).inc()
        else:
            self.last_success.labels(key).set(now.timestamp())
        if result.switch_duration is not None:
            self.switch_seconds.labels(key).observe(
                max(0.0, result.switch_duration.total_seconds())
            )
