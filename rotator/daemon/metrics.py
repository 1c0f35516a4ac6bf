"""Prometheus metrics of the rotator, in a registry of their own (one per service instance).

All key metrics are labelled by managed key. The runway is what to page on: the time left until
the key in use expires, minus the worst-case time a rotation needs (switch_timeout + grace
period + a margin). It goes negative *before* anything breaks, while the old key still works.

Every per-key series exists from the moment the key is loaded (:meth:`Metrics.track_keys`):
the counters at 0 for every result and step, ``rotator_last_success_timestamp_seconds`` at 0
("never"). A counter that only appears with its first failure starts at 1, and ``increase()``
over it is 0: the first failure would never alert. Keys a reload removes lose their series.

Labels come from the result's :class:`~rotator.engine.model.Failure` fields (``step``,
``category``), never from message text: rewording a message changes no series.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Final, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from rotator.engine.model import Failure, KeyResult, KeySpec, Step
from rotator.errors import Category

#: Added to switch_timeout + grace_period in the runway: a run interval's worth of slack.
RUNWAY_MARGIN = timedelta(hours=1)

#: Steps a failure is attributed to (``rotator_step_failures_total{step}``).
STEPS: Final[tuple[Step, ...]] = get_args(Step)
#: What to do about a failure (``rotator_key_failure_category{category}``).
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
#: ``rotator_rotations_total{result}``.
ROTATION_RESULTS: Final = ("success", "failed")
#: The step label of a failed result that carries no failure (the engine always sets one).
UNKNOWN_STEP: Final = "unknown"
#: Decisions that start a rotation (a new key is created or an existing one pushed).
ROTATING_DECISIONS: Final = frozenset({"bootstrap", "rotate", "repair"})
#: Failures of the switch-over: the rotation pushed a key that its consumers did not take up.
SWITCH_STEPS: Final = frozenset({"switch", "restart"})
#: The distribution whose version ``rotator_build_info`` reports.
DISTRIBUTION: Final = "stackstate-key-rotator"


def failure_of(result: KeyResult) -> Failure | None:
    """Why the key is not healthy: the result's failure, else its plan's (None when healthy)."""
    return result.failure or result.plan.failure


def failed_step(result: KeyResult) -> str:
    """The step a failed key stopped at, from its failure's ``step`` field."""
    failure = failure_of(result)
    return failure.step if failure is not None else UNKNOWN_STEP


def rotation_result(result: KeyResult) -> str | None:
    """``success``/``failed`` when the result counts as a rotation attempt, else None.

    A failed switch-over (step ``switch`` or ``restart``) is a failed rotation whatever the
    plan's decision: the new key was pushed but its consumers did not take it up.
    """
    rotating = result.plan.decision in ROTATING_DECISIONS
    if result.outcome == "failed":
        failure = failure_of(result)
        if rotating or (failure is not None and failure.step in SWITCH_STEPS):
            return "failed"
        return None
    if rotating and result.outcome in ("rotated", "planned", "waiting", "revoked"):
        return "success"
    return None


def build_version() -> str:
    """The installed version of the rotator, or ``unknown`` (e.g. run from a source tree)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    """The metric families, bound to one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # ``*_created`` series double every counter and histogram and no rule reads them. The
        # switch is process-wide in prometheus_client; the rotator serves one registry only.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the library has no hints
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._keys: set[str] = set()
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
            "Rotations attempted (bootstrap, rotate, repair), by result; a failed switch-over "
            "counts as failed.",
            ["key", "result"],
            registry=r,
        )
        self.step_failures = Counter(
            "rotator_step_failures_total",
            "Failed runs of a managed key, by the step that failed.",
            ["key", "step"],
            registry=r,
        )
        self.failure_category = Gauge(
            "rotator_key_failure_category",
            "1 for the category of what keeps the managed key from being healthy in its last "
            "run (retry, fix-config, fix-permissions, wait, human), 0 for the others.",
            ["key", "category"],
            registry=r,
        )
        self.last_success = Gauge(
            "rotator_last_success_timestamp_seconds",
            "When a run of the managed key last finished without failure (Unix time); 0: never "
            "since this process started.",
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
        self.suspended = Gauge(
            "rotator_key_suspended",
            "1 while the managed key is suspended (suspend: true: observed, never acted on), "
            "else 0.",
            ["key"],
            registry=r,
        )
        self.is_leader = Gauge(
            "rotator_is_leader",
            "1 when this replica runs jobs (leader or no election).",
            registry=r,
        )
        self.build_info = Gauge(
            "rotator_build_info",
            "Always 1; the version label says which rotator runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(build_version()).set(1)

    # -- key lifecycle ---------------------------------------------------------------------------

    def track_keys(self, specs: Iterable[KeySpec]) -> None:
        """Make the series of exactly these managed keys exist (on load and on every reload).

        New keys get every counter at 0 and ``last_success`` at 0; keys that are still
        configured keep their values; keys no longer configured lose all their series.
        """
        specs = list(specs)
        names = {spec.name for spec in specs}
        for gone in sorted(self._keys - names):
            self._forget(gone)
        for new in sorted(names - self._keys):
            self._initialise(new)
        self._keys = names
        for spec in specs:
            self.suspended.labels(spec.name).set(1 if spec.suspended else 0)

    def _initialise(self, key: str) -> None:
        for result in ROTATION_RESULTS:
            self.rotations.labels(key, result)
        for step in STEPS:
            self.step_failures.labels(key, step)
        for category in CATEGORIES:
            self.failure_category.labels(key, category).set(0)
        self.last_success.labels(key).set(0)

    def _forget(self, key: str) -> None:
        for result in ROTATION_RESULTS:
            self.rotations.remove(key, result)
        for step in (*STEPS, UNKNOWN_STEP):
            self.step_failures.remove(key, step)
        for category in CATEGORIES:
            self.failure_category.remove(key, category)
        for gauge in (self.expiry, self.runway, self.last_success):
            gauge.remove(key)
        self.suspended.remove(key)
        self.switch_seconds.remove(key)

    # -- results ---------------------------------------------------------------------------------

    def observe_result(self, spec: KeySpec, result: KeyResult, now: datetime) -> None:
        """Update every key metric from one run's result."""
        key = spec.name
        expiration = result.expiration
        if expiration is not None:
            self.expiry.labels(key).set(expiration.timestamp())
            need = spec.switch_timeout + spec.grace_period + RUNWAY_MARGIN
            self.runway.labels(key).set((expiration - now - need).total_seconds())
        counted = rotation_result(result)
        if counted is not None:
            self.rotations.labels(key, counted).inc()
        if result.outcome == "failed":
            self.step_failures.labels(key, failed_step(result)).inc()
        else:
            self.last_success.labels(key).set(now.timestamp())
        failure = failure_of(result)
        for category in CATEGORIES:
            current = failure is not None and failure.category == category
            self.failure_category.labels(key, category).set(1 if current else 0)
        if result.switch_duration is not None:
            self.switch_seconds.labels(key).observe(
                max(0.0, result.switch_duration.total_seconds())
            )
