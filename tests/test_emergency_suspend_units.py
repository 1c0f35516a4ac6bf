"""Small pieces of ``rotate --emergency`` and ``suspend: true``: the emergency alert, the
suspended gauge, the handed-over request's flag and the CLI's follow-up loop."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rotator.alerts.event import AlertEvent
from rotator.cli.emergency import finished, follow
from rotator.daemon.metrics import Metrics
from rotator.daemon.notify import alerts_for
from rotator.engine.model import CurrentKey, Failure, KeyPlan, KeyResult, RunReport
from rotator.handoff import RunRequest
from rotator.keytypes import ApiKey
from tests.test_metrics import OTHER, SPEC, sample

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NEW = ApiKey("service-token", 2, "agent-new", None, NOW + timedelta(days=90), ("r",), NOW)


def plan(decision: str = "rotate", **extra: object) -> KeyPlan:
    base = KeyPlan(
        "agent",
        "service-token",
        decision,  # type: ignore[arg-type]
        "r",
        CurrentKey(1, "agent-old", NOW + timedelta(days=60)),
    )
    return replace(base, **extra)  # type: ignore[arg-type]


class TestEmergencyAlert:
    def test_a_pushed_emergency_rotation_is_a_critical_alert(self) -> None:
        result = KeyResult(plan(emergency=True), "rotated", new_key=NEW)
        found = alerts_for(result, alert_before=timedelta(days=7), now=NOW, run_id="r")
        (alert,) = [a for a in found if a.event is AlertEvent.EMERGENCY_ROTATION]
        assert alert.severity == "critical"
        assert alert.summary == (
            "agent: EMERGENCY rotation: new key agent-new pushed; the previous key agent-old is "
            "revoked as soon as every consumer switched, without the grace period"
        )

    def test_a_failed_emergency_says_the_old_key_is_live(self) -> None:
        failure = Failure("verify", "fix-permissions", "KeyRefused", "refused")
        result = KeyResult(plan(emergency=True), "failed", "refused", failure=failure)
        found = alerts_for(result, alert_before=timedelta(days=7), now=NOW, run_id="r")
        (alert,) = [a for a in found if a.event is AlertEvent.EMERGENCY_ROTATION]
        assert "failed at verify; the previous key agent-old is still live" in alert.summary
        assert alert.step == "verify"

    def test_no_emergency_alert_otherwise(self) -> None:
        for result in (
            KeyResult(plan(), "rotated", new_key=NEW),
            KeyResult(plan("switch", emergency=True), "waiting"),
        ):
            found = alerts_for(result, alert_before=timedelta(days=7), now=NOW, run_id="r")
            assert AlertEvent.EMERGENCY_ROTATION not in {a.event for a in found}


class TestSuspendedGauge:
    def test_one_for_a_suspended_key_and_dropped_with_it(self) -> None:
        metrics = Metrics()
        metrics.track_keys([replace(SPEC, suspended=True), OTHER])
        assert sample(metrics, "rotator_key_suspended", key="agent") == 1
        assert sample(metrics, "rotator_key_suspended", key="otel") == 0
        metrics.track_keys([SPEC])  # a reload resumed it and removed otel
        assert sample(metrics, "rotator_key_suspended", key="agent") == 0
        assert sample(metrics, "rotator_key_suspended", key="otel") is None


class TestHandedOverRequest:
    def test_emergency_survives_the_lease_annotation(self) -> None:
        request = RunRequest.new(
            ["agent"],
            force=True,
            requester="me",
            valid_for=timedelta(minutes=5),
            now=NOW,
            emergency=True,
        )
        parsed = RunRequest.from_annotations({"rotator.stackstate.io/request": request.to_json()})
        assert parsed == request

    def test_a_plain_request_has_no_emergency_field(self) -> None:
        request = RunRequest.new(
            ["agent"], force=True, requester="me", valid_for=timedelta(minutes=5), now=NOW
        )
        assert "emergency" not in request.to_json()
        parsed = RunRequest.from_annotations({"rotator.stackstate.io/request": request.to_json()})
        assert parsed is not None and not parsed.emergency


def report(*results: KeyResult) -> RunReport:
    return RunReport(dry_run=False, started_at=NOW, results=results)


class TestFollow:
    def test_finished(self) -> None:
        assert finished(KeyResult(plan("rotate"), "rotated", new_key=NEW), created=True) is None
        assert finished(KeyResult(plan("revoke"), "revoked"), created=True) is True
        assert finished(KeyResult(plan("revoke"), "revoked"), created=False) is None
        complete = KeyResult(plan("switch", completes_switch=True), "unchanged")
        assert finished(complete, created=True) is True
        timeout = Failure("switch", "human", "SwitchTimeout", "late")
        failed = KeyResult(plan("blocked", failed=True, failure=timeout), "failed", failure=timeout)
        assert finished(failed, created=True) is False

    def test_reruns_until_revoked_with_emergency_only_before_the_new_key(self) -> None:
        runs = iter(
            [
                report(KeyResult(plan("rotate"), "rotated", new_key=NEW)),
                report(KeyResult(plan("switch"), "waiting")),
                report(KeyResult(plan("revoke"), "revoked")),
            ]
        )
        asked: list[bool] = []
        notes: list[str] = []

        def rerun(emergency: bool) -> RunReport:
            asked.append(emergency)
            return next(runs)

        first = report(KeyResult(plan("revoke"), "revoked"))  # finishing an old switch-over
        last, ok = follow(
            first,
            SPEC,
            rerun,
            poll=0.0,
            still_held=None,
            note=notes.append,
            sleep=lambda _s: None,
        )
        assert ok and last.results[0].outcome == "revoked"
        assert asked == [True, False, False]

    def test_gives_up_after_the_deadline_without_revoking(self) -> None:
        clock = iter([0.0, 0.0, 10_000.0])
        waiting = report(KeyResult(plan("switch"), "waiting"))
        first = report(KeyResult(plan("rotate"), "rotated", new_key=NEW))
        notes: list[str] = []
        _, ok = follow(
            first,
            SPEC,
            lambda _e: waiting,
            poll=0.0,
            still_held=None,
            note=notes.append,
            sleep=lambda _s: None,
            monotonic=lambda: next(clock),
        )
        assert not ok
        assert notes[-1] == "emergency: gave up waiting; the old key was NOT revoked"

    def test_stops_when_the_lock_is_lost(self) -> None:
        first = report(KeyResult(plan("rotate"), "rotated", new_key=NEW))
        notes: list[str] = []
        _, ok = follow(
            first,
            SPEC,
            lambda _e: first,
            poll=0.0,
            still_held=lambda: False,
            note=notes.append,
        )
        assert not ok and "lock was lost" in notes[-1]
