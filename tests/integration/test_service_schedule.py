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
            job = service.scheduler.get_job("recheck:agent")
            assert job is not None
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
            job = service.scheduler.get_job("key:agent")
            assert job is not None
            fire = job.next_run_time
            assert fire.minute == 0 and fire.hour % 6 == 0
            assert fire > datetime.now(UTC)
            assert fire - datetime.now(UTC) <= timedelta(hours=6)
        finally:
            service.scheduler.shutdown(wait=False)
            service.loaded.runtime.close()
