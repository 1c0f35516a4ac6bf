"""Tests for rotator.daemon.metrics: what a run's results do to the Prometheus metrics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.daemon.metrics import CATEGORIES, STEPS, Metrics, build_version, failed_step
from rotator.engine.model import CurrentKey, Failure, KeyPlan, KeyResult, KeySpec
from rotator.engine.policy import Windows
from rotator.keytypes import ApiKey
from tests.result_shapes import Shape, messages, shaped, shapes

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
OTHER = replace(SPEC, name="otel")


def plan(
    decision: str,
    *,
    failed: bool = False,
    reason: str = "r",
    expires: datetime | None = None,
    failure: Failure | None = None,
) -> KeyPlan:
    """A plan for ``agent`` whose current key expires at ``expires``."""
    return KeyPlan(
        key="agent",
        kind="service-token",
        decision=decision,  # type: ignore[arg-type]
        reason=reason,
        current=CurrentKey(1, "agent-20260101T000000Z", expires),
        failed=failed,
        failure=failure,
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value."""
    return metrics.registry.get_sample_value(name, labels)


def series(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def keys_in(metrics: Metrics) -> set[str]:
    """The managed keys that have at least one series."""
    return {dict(labels)["key"] for (_, labels) in series(metrics) if "key" in dict(labels)}


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
        push = Failure("push", "retry", "TargetUnavailable", "vault-kv:x: sealed")
        metrics.observe_result(SPEC, KeyResult(plan("rotate"), "failed", "x", failure=push), NOW)
        assert sample(metrics, "rotator_rotations_total", key="agent", result="success") == 1
        assert sample(metrics, "rotator_rotations_total", key="agent", result="failed") == 1
        assert sample(metrics, "rotator_step_failures_total", key="agent", step="push") == 1
        assert sample(metrics, "rotator_key_expiry_timestamp_seconds", key="agent") == (
            new.expiration.timestamp() if new.expiration else None
        )

    def test_switch_failure_counts_as_a_failed_rotation(self) -> None:
        """A failed switch-over or restart is a failed rotation, whatever the decision."""
        metrics = Metrics()
        timeout = Failure("switch", "wait", "SwitchTimeout", "1 consumer not switched")
        restart = Failure("restart", "human", "ConsumerFailed", "restart refused")
        blocked = plan("blocked", failed=True, failure=timeout)
        metrics.observe_result(SPEC, KeyResult(blocked, "failed", "x"), NOW)
        metrics.observe_result(SPEC, KeyResult(plan("switch"), "failed", "y", failure=restart), NOW)
        assert sample(metrics, "rotator_rotations_total", key="agent", result="failed") == 2
        assert sample(metrics, "rotator_step_failures_total", key="agent", step="switch") == 1
        assert sample(metrics, "rotator_step_failures_total", key="agent", step="restart") == 1

    def test_an_observe_failure_is_no_rotation(self) -> None:
        """A key that could not even be observed failed a step, not a rotation."""
        metrics = Metrics()
        metrics.track_keys([SPEC])
        observe = Failure("observe", "retry", "StackStateUnreachable", "cannot list")
        metrics.observe_result(SPEC, KeyResult(plan("blocked", failure=observe), "failed"), NOW)
        assert sample(metrics, "rotator_rotations_total", key="agent", result="failed") == 0
        assert sample(metrics, "rotator_step_failures_total", key="agent", step="observe") == 1

    def test_failure_category_follows_the_last_run(self) -> None:
        """The category gauge is 1 for the current failure's category and 0 once healthy."""
        metrics = Metrics()
        metrics.track_keys([SPEC])
        forbidden = Failure("push", "fix-permissions", "TargetForbidden", "403")
        metrics.observe_result(SPEC, KeyResult(plan("rotate"), "failed", failure=forbidden), NOW)
        values = {
            c: sample(metrics, "rotator_key_failure_category", key="agent", category=c)
            for c in CATEGORIES
        }
        assert values == {c: float(c == "fix-permissions") for c in CATEGORIES}
        metrics.observe_result(SPEC, KeyResult(plan("ok"), "unchanged"), NOW)
        assert {
            sample(metrics, "rotator_key_failure_category", key="agent", category=c)
            for c in CATEGORIES
        } == {0.0}

    def test_switch_duration_is_observed(self) -> None:
        """A revocation records how long the switch-over took."""
        metrics = Metrics()
        result = KeyResult(plan("revoke"), "revoked", switch_duration=timedelta(seconds=90))
        metrics.observe_result(SPEC, result, NOW)
        assert sample(metrics, "rotator_consumer_switch_seconds_count", key="agent") == 1
        assert sample(metrics, "rotator_consumer_switch_seconds_sum", key="agent") == 90
        assert b"rotator_consumer_switch_seconds_bucket" in generate_latest(metrics.registry)


class TestTrackKeys:
    """Every series of a key exists from the moment it is loaded, and goes with it."""

    def test_a_loaded_key_has_every_series_at_zero(self) -> None:
        """Both rotation results, every step, every category and last success start at 0."""
        metrics = Metrics()
        metrics.track_keys([SPEC])
        for result in ("success", "failed"):
            assert sample(metrics, "rotator_rotations_total", key="agent", result=result) == 0
        for step in STEPS:
            assert sample(metrics, "rotator_step_failures_total", key="agent", step=step) == 0
        for category in CATEGORIES:
            assert (
                sample(metrics, "rotator_key_failure_category", key="agent", category=category) == 0
            )
        assert sample(metrics, "rotator_last_success_timestamp_seconds", key="agent") == 0

    def test_a_reload_drops_removed_keys_and_keeps_the_others(self) -> None:
        """Removed keys lose every series; kept keys keep their counts; new keys start at 0."""
        metrics = Metrics()
        metrics.track_keys([SPEC])
        push = Failure("push", "retry", "TargetUnavailable", "sealed")
        metrics.observe_result(SPEC, KeyResult(plan("rotate"), "failed", failure=push), NOW)
        metrics.observe_result(
            SPEC,
            KeyResult(plan("revoke"), "revoked", switch_duration=timedelta(seconds=5)),
            NOW,
        )
        metrics.track_keys([SPEC, OTHER])
        assert sample(metrics, "rotator_rotations_total", key="agent", result="failed") == 1
        assert sample(metrics, "rotator_rotations_total", key="otel", result="failed") == 0
        metrics.track_keys([OTHER])
        assert keys_in(metrics) == {"otel"}

    def test_no_created_series(self) -> None:
        """Counters and histograms expose no ``_created`` series."""
        metrics = Metrics()
        metrics.track_keys([SPEC])
        metrics.observe_result(
            SPEC,
            KeyResult(plan("revoke"), "revoked", switch_duration=timedelta(seconds=5)),
            NOW,
        )
        assert b"_created" not in generate_latest(metrics.registry)

    def test_build_info_names_the_version(self) -> None:
        """rotator_build_info is 1 with the installed version as its label."""
        metrics = Metrics()
        assert build_version() != ""
        assert sample(metrics, "rotator_build_info", version=build_version()) == 1


class TestFailedStep:
    """Which step a failure is attributed to."""

    def test_the_step_is_the_failure_field(self) -> None:
        """The result's failure wins; without it, the plan's."""
        create = Failure("create", "retry", "StackStateServerError", "verify: looks like verify")
        observe = Failure("observe", "retry", "TargetUnavailable", "push: looks like push")
        assert failed_step(KeyResult(plan("rotate"), "failed", "x", failure=create)) == "create"
        blocked = plan("blocked", failed=True, failure=observe)
        assert failed_step(KeyResult(blocked, "failed", "x")) == "observe"

    def test_no_failure_is_unknown_not_guessed_from_text(self) -> None:
        """A failed result without failure data is not parsed for a step."""
        assert failed_step(KeyResult(plan("rotate"), "failed", "push to x: sealed")) == "unknown"


class TestLabelsIgnoreMessages:
    """Rewording messages changes no metric: labels come from the failure's fields."""

    # No deadline: the 2-core CI machine runs other tests beside these.
    @settings(deadline=None)
    @given(shapes=st.lists(shapes, max_size=6), first=messages, second=messages)
    def test_rewording_every_message_changes_no_series(
        self, shapes: list[Shape], first: str, second: str
    ) -> None:
        """Two runs of equal shape whose messages differ expose the same series and values."""
        exposed = []
        for message in (first, second):
            metrics = Metrics()
            metrics.track_keys([SPEC])
            for shape in shapes:
                metrics.observe_result(SPEC, shaped(shape, message), NOW)
            exposed.append(series(metrics))
        assert exposed[0] == exposed[1]
