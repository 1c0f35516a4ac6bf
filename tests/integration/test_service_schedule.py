"""The daemon's scheduling decisions with travelled time (time-machine), in-process.

The service runs its jobs' bodies directly (``run_key``) at chosen moments; StackState, Vault and
Kubernetes are the emulators over real HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from rotator.daemon.service import Service
from tests.plugins.world import World


class TestScheduleDecisions:
    """When keys rotate, with time travelling."""

    def test_key_expiring_in_20_days_rotates_on_day_6_not_before(self, world: World) -> None:
        """rotate_before 14d: on day 5 nothing happens, on day 6 the key is rotated."""
        start = datetime.now(UTC).replace(microsecond=0)
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        with time_machine.travel(start, tick=True):
            world.settle()
        (first,) = world.managed_keys("service-token", "agent")
        service = Service(world.write_config())
        service.load()
        try:
            with time_machine.travel(start + timedelta(days=5), tick=True):
                report = service.run_key("agent")
                assert report is not None
                assert report.results[0].plan.decision == "ok"
            with time_machine.travel(start + timedelta(days=6, minutes=1), tick=True):
                report = service.run_key("agent")
                assert report is not None
                assert report.results[0].plan.decision == "rotate"
                assert report.results[0].outcome == "rotated"
            assert len(world.managed_keys("service-token", "agent")) == 2
            assert first["id"] in [k["id"] for k in world.managed_keys("service-token", "agent")]
            # The push starts a switch-over: the key is re-checked soon, not in an hour.
            due = service.recheck_due("agent")
            assert due is not None
            assert timedelta(0) < due - report.started_at <= timedelta(minutes=1, seconds=5)
            assert service.scheduler.get_job("recheck") is not None
        finally:
            service.loaded.runtime.close()

    def test_windows_hold_a_due_rotation_until_they_open(self, world: World) -> None:
        """Due on a Tuesday at noon, the rotation waits for the 02:00 window and runs then."""
        tuesday_noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        with time_machine.travel(tuesday_noon - timedelta(days=10), tick=True):
            world.settle()
        world.defaults = {
            "validity": "20d",
            "rotate_before": "14d",
            "windows": ["0 2-5 * * 1-5"],
        }
        service = Service(world.write_config())
        service.load()
        try:
            with time_machine.travel(tuesday_noon, tick=True):
                report = service.run_key("agent")
                assert report is not None
                assert report.results[0].plan.decision == "blocked"
                assert "maintenance window" in report.results[0].plan.reason
                assert report.results[0].outcome == "unchanged"
            with time_machine.travel(tuesday_noon + timedelta(hours=14, minutes=30), tick=True):
                report = service.run_key("agent")
                assert report is not None
                assert report.results[0].plan.decision == "rotate"
        finally:
            service.loaded.runtime.close()

    def test_cron_schedules_are_respected(self, world: World) -> None:
        """A key with schedule.cron gets a job whose next run is the cron's next time."""
        world.defaults = {"schedule": {"cron": "0 */6 * * *", "jitter": "0s"}}
        world.add_key("agent")
        service = Service(world.write_config())
        service.load()
        try:
            service._schedule_keys()
            service.scheduler.start(paused=True)
            job = service.schedule_job("agent")
            assert job is not None
            fire = job.next_run_time
            assert fire.minute == 0 and fire.hour % 6 == 0
            assert fire > datetime.now(UTC)
            assert fire - datetime.now(UTC) <= timedelta(hours=6)
        finally:
            service.scheduler.shutdown(wait=False)
            service.loaded.runtime.close()


#: StackState's list calls, one per key kind (a GET of the collection itself).
LIST_PATHS = {"/api/security/tokens", "/api/security/ingestion/api_keys"}


def list_calls(world: World) -> list[str]:
    """The key-list requests StackState answered since its log was last cleared."""
    return [r.path for r in world.stackstate.log if r.method == "GET" and r.path in LIST_PATHS]


class TestBatches:
    """One job per distinct schedule; each tick lists every key kind once, whatever the keys."""

    def test_keys_sharing_a_schedule_run_together_with_one_list_per_kind(
        self, world: World
    ) -> None:
        """Three keys of two kinds on the default schedule are one batch: one run, two list
        calls; a key with its own cron schedule is a batch of its own."""
        world.defaults = {"schedule": {"interval": "1h", "jitter": "0s"}}
        world.add_key("agent")
        world.add_key("ingest", "ingestion-api-key")
        world.add_key("otel")
        world.add_key("nightly", schedule={"cron": "0 3 * * *", "jitter": "0s"})
        world.settle()
        service = Service(world.write_config())
        service.load()
        try:
            service._schedule_keys()
            service.scheduler.start(paused=True)
            hourly = service.schedule_job("agent")
            assert hourly is not None and hourly.id == "schedule:every 1h"
            assert service.schedule_job("otel").id == hourly.id
            assert service.schedule_job("ingest").id == hourly.id
            assert service.schedule_job("nightly").id == "schedule:cron 0 3 * * *"
            assert {j.id for j in service.scheduler.get_jobs()} == {
                "schedule:every 1h",
                "schedule:cron 0 3 * * *",
            }
            world.stackstate.clear_log()
            report = service.run_batch("every 1h")
            assert report is not None
            assert [r.plan.key for r in report.results] == ["agent", "ingest", "otel"]
            assert sorted(list_calls(world)) == sorted(LIST_PATHS)
        finally:
            service.scheduler.shutdown(wait=False)
            service.loaded.runtime.close()

    def test_a_key_in_backoff_is_skipped_by_its_batch_until_its_retry_is_due(
        self, world: World
    ) -> None:
        """A failed key waits for its backoff; the others of its batch go on every tick."""
        start = datetime.now(UTC).replace(microsecond=0)
        world.defaults = {"schedule": {"interval": "1h", "jitter": "0s", "recheck": "1m"}}
        world.add_key("agent")
        world.add_key("otel")
        with time_machine.travel(start, tick=True):
            world.settle()
        service = Service(world.write_config())
        service.load()
        try:
            world.kube.fail_next(
                "GET", r"/api/v1/namespaces/.*/secrets/agent-secrets$", 500, count=None
            )
            with time_machine.travel(start + timedelta(minutes=1), tick=True):
                report = service.run_batch("every 1h")
                assert report is not None
                outcomes = {r.plan.key: r.outcome for r in report.results}
                assert outcomes == {"agent": "failed", "otel": "unchanged"}
                due = service.recheck_due("agent")
                assert due is not None and due > report.started_at
                assert service.recheck_due("otel") is None
                # The next tick, before the retry is due: agent is skipped, otel runs.
                report = service.run_batch("every 1h")
                assert report is not None
                assert [r.plan.key for r in report.results] == ["otel"]
            world.kube.clear_faults()
            with time_machine.travel(due + timedelta(seconds=1), tick=True):
                report = service.run_batch("every 1h")
                assert report is not None
                assert [r.plan.key for r in report.results] == ["agent", "otel"]
                assert {r.outcome for r in report.results} == {"unchanged"}
                assert service.recheck_due("agent") is None
        finally:
            service.loaded.runtime.close()

    def test_rechecks_due_together_run_together(self, world: World) -> None:
        """Two keys rotated in one run are rechecked in one run: one list call, one job."""
        start = datetime.now(UTC).replace(microsecond=0)
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        world.add_key("otel")
        with time_machine.travel(start, tick=True):
            world.settle()
        world.defaults = {
            "validity": "20d",
            "rotate_before": "14d",
            "schedule": {"interval": "1h", "jitter": "0s", "recheck": "1m"},
        }
        service = Service(world.write_config())
        service.load()
        try:
            with time_machine.travel(start + timedelta(days=6, minutes=1), tick=True):
                report = service.run_batch("every 1h")
                assert report is not None
                assert {r.outcome for r in report.results} <= {"rotated", "waiting"}
                due = [service.recheck_due("agent"), service.recheck_due("otel")]
                assert None not in due
                jobs = [j.id for j in service.scheduler.get_jobs() if j.id.startswith("recheck")]
                assert jobs == ["recheck"]
            world.stackstate.clear_log()
            latest = max(d for d in due if d is not None)
            with time_machine.travel(latest + timedelta(seconds=1), tick=True):
                report = service.run_rechecks()
                assert report is not None
                assert [r.plan.key for r in report.results] == ["agent", "otel"]
            assert list_calls(world) == ["/api/security/tokens"]
        finally:
            service.loaded.runtime.close()
