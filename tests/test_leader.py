"""Tests for Lease leader election, over real HTTP through the official client to the emulator.

The algorithm is driven round by round with ``try_acquire_or_renew()`` and injected clocks (a
settable monotonic clock per replica, the emulator's frozen wall clock); only the loop tests run
the background thread, with short durations, and they wait on events with generous timeouts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.clients.kubernetes import KubeClients
from rotator.daemon.leader import (
    RELEASED_LEASE_SECONDS,
    LeaderElector,
    LeaderRecord,
    LeaseLock,
    MicroTime,
    format_microtime,
)
from rotator.errors import (
    ConfigError,
    LeaseConflict,
    LeaseForbidden,
    LeaseInvalid,
    LeaseUnavailable,
)
from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.kubernetes import KubeClock

NAMESPACE = "default"
LEASE = "stackstate-key-rotator"
LEASES_PATH = rf"/apis/coordination\.k8s\.io/v1/namespaces/{NAMESPACE}/leases(/.*)?"
#: Seconds a loop test waits for an event before it fails (never reached when all is well).
EVENT_TIMEOUT = 15.0


class Monotonic:
    """A settable monotonic clock for one replica."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class Callbacks:
    """Records the elector's callbacks, and lets a test wait for them."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.leaders: list[str] = []
        self._changed = threading.Condition()

    def started(self) -> None:
        """on_started_leading."""
        with self._changed:
            self.calls.append("started")
            self._changed.notify_all()

    def stopped(self) -> None:
        """on_stopped_leading."""
        with self._changed:
            self.calls.append("stopped")
            self._changed.notify_all()

    def new_leader(self, holder: str) -> None:
        """on_new_leader."""
        with self._changed:
            self.leaders.append(holder)
            self._changed.notify_all()

    def wait_for(self, calls: list[str]) -> None:
        """Block until the recorded calls are exactly ``calls`` (fail after EVENT_TIMEOUT)."""
        with self._changed:
            reached = self._changed.wait_for(lambda: self.calls == calls, EVENT_TIMEOUT)
        assert reached, f"callbacks {self.calls}, expected {calls}"

    def wait_for_leaders(self, leaders: list[str]) -> None:
        """Block until the reported leaders are exactly ``leaders`` (fail after EVENT_TIMEOUT)."""
        with self._changed:
            reached = self._changed.wait_for(lambda: self.leaders == leaders, EVENT_TIMEOUT)
        assert reached, f"leaders {self.leaders}, expected {leaders}"


@pytest.fixture
def clients(kubeconfig: Path) -> Iterator[KubeClients]:
    """Clients for the ``kube`` emulator (context ``sandbox``), closed at teardown."""
    with KubeClients(kubeconfig, request_timeout=5.0) as built:
        yield built


@pytest.fixture
def make_elector(
    clients: KubeClients, kube_clock: KubeClock
) -> Iterator[Callable[..., tuple[LeaderElector, Callbacks]]]:
    """Factory of electors on the same Lease; each gets its own callbacks; stopped at teardown."""
    built: list[LeaderElector] = []

    def make(identity: str, **kwargs: Any) -> tuple[LeaderElector, Callbacks]:
        callbacks = Callbacks()
        options: dict[str, Any] = {
            "lease_duration": 15,
            "renew_deadline": 10,
            "retry_period": 2,
            "clock": Monotonic(),
            "wall_clock": kube_clock,
        }
        options.update(kwargs)
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity=identity)
        elector = LeaderElector(
            lock,
            identity=identity,
            on_started_leading=callbacks.started,
            on_stopped_leading=callbacks.stopped,
            on_new_leader=callbacks.new_leader,
            **options,
        )
        built.append(elector)
        return elector, callbacks

    yield make
    for elector in built:
        elector.stop(release=False)


def stored(kube: KubernetesEmulator) -> dict[str, Any]:
    """The Lease's spec as the emulator stores it."""
    lease = kube.get("leases", NAMESPACE, LEASE)
    assert lease is not None
    spec: dict[str, Any] = lease["spec"]
    return spec


def clock_of(elector: LeaderElector) -> Monotonic:
    """The injected monotonic clock of ``elector``."""
    clock = elector._clock  # the factory injected it; tests move it
    assert isinstance(clock, Monotonic)
    return clock


def lease_writes(kube: KubernetesEmulator) -> list[dict[str, Any]]:
    """JSON bodies of every POST and PUT of the Lease, in order."""
    return [
        json.loads(entry.body)
        for entry in kube.log
        if entry.method in ("POST", "PUT") and "/leases" in entry.path
    ]


class TestMicroTime:
    """MicroTime formatting."""

    def test_whole_second_keeps_six_fractional_digits(self) -> None:
        """A time at microsecond 0 is written with .000000 and Z, unlike isoformat()."""
        moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        assert format_microtime(moment) == "2025-06-01T12:00:00.000000Z"
        assert MicroTime.of(moment).isoformat() == "2025-06-01T12:00:00.000000Z"

    def test_other_zones_are_converted_to_utc(self) -> None:
        """A time in another zone is written as the same instant in UTC."""
        from datetime import timezone

        moment = datetime(2025, 6, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
        assert format_microtime(moment) == "2025-06-01T12:00:00.000005Z"
        assert MicroTime.of(moment) == moment

    def test_naive_time_is_refused(self) -> None:
        """A naive datetime cannot become a MicroTime (its zone would be a guess)."""
        with pytest.raises(ValueError, match="timezone-aware"):
            format_microtime(datetime(2025, 6, 1, 12, 0))  # naive on purpose


class TestLeaseLock:
    """LeaseLock: reading, creating and replacing the Lease, and its error mapping."""

    @pytest.fixture
    def lock(self, clients: KubeClients) -> LeaseLock:
        """The lock on the ``kube`` emulator."""
        return LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")

    @staticmethod
    def record(holder: str = "a", transitions: int = 0) -> LeaderRecord:
        """A record held by ``holder`` at a whole second."""
        moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        return LeaderRecord(holder, 15, moment, moment, transitions)

    def test_missing_lease_reads_as_none(self, lock: LeaseLock) -> None:
        """GET of a Lease that does not exist returns None rather than raising."""
        assert lock.get() is None

    def test_create_then_get_round_trips_the_record(
        self, lock: LeaseLock, kube: KubernetesEmulator
    ) -> None:
        """A created record reads back equal, with the server's resourceVersion."""
        created = lock.create(self.record())
        assert created == self.record()
        assert created.resource_version
        read = lock.get()
        assert read == self.record()
        assert read is not None
        assert read.resource_version == created.resource_version
        assert stored(kube)["acquireTime"] == "2025-06-01T12:00:00.000000Z"

    def test_update_with_a_stale_resource_version_is_a_conflict(self, lock: LeaseLock) -> None:
        """A PUT carrying a resourceVersion that moved on raises LeaseConflict (409)."""
        created = lock.create(self.record())
        lock.update(self.record(transitions=1), created.resource_version)
        with pytest.raises(LeaseConflict, match="409"):
            lock.update(self.record("b"), created.resource_version)
        assert lock.get() == self.record(transitions=1)

    def test_create_of_an_existing_lease_is_a_conflict(self, lock: LeaseLock) -> None:
        """Creating a Lease someone created first raises LeaseConflict."""
        lock.create(self.record())
        with pytest.raises(LeaseConflict):
            lock.create(self.record("b"))

    def test_forbidden_is_target_forbidden(self, lock: LeaseLock, kube: KubernetesEmulator) -> None:
        """RBAC refusing the read raises LeaseForbidden naming the lease."""
        kube.forbid("get", "leases")
        with pytest.raises(LeaseForbidden, match=f"lease {NAMESPACE}/{LEASE}.*403"):
            lock.get()

    @pytest.mark.parametrize("status", [500, 503, 429])
    def test_server_trouble_is_unavailable(
        self, lock: LeaseLock, kube: KubernetesEmulator, status: int
    ) -> None:
        """A 5xx or 429 answer raises LeaseUnavailable with the status."""
        kube.fail_next("GET", LEASES_PATH, status)
        with pytest.raises(LeaseUnavailable, match=str(status)):
            lock.get()

    def test_rejected_record_is_invalid(self, lock: LeaseLock) -> None:
        """A record the API server refuses (422, zero duration) raises LeaseInvalid."""
        moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        with pytest.raises(LeaseInvalid, match=r"422.*leaseDurationSeconds"):
            lock.create(LeaderRecord("a", 0, moment, moment))

    def test_unreachable_api_server_is_unavailable(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """A refused connection raises LeaseUnavailable."""
        emulator = make_kube()
        path = emulator.write_kubeconfig(tmp_path / "gone")
        emulator.stop()
        with KubeClients(path, request_timeout=2.0) as clients:
            lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
            with pytest.raises(LeaseUnavailable, match="cannot connect"):
                lock.get()


class TestLeaderElectorSettings:
    """LeaderElector: timing checks, as client-go makes them."""

    @pytest.mark.parametrize(
        ("lease_duration", "renew_deadline", "retry_period", "problem"),
        [
            (10, 10, 2, "renew_deadline must be shorter"),
            (15, 2.4, 2, "retry_period must be shorter"),
            (0.5, 0.3, 0.1, "at least one second"),
            (15, 10, 0, "retry_period must be positive"),
        ],
    )
    def test_inconsistent_timings_are_refused(
        self,
        clients: KubeClients,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        problem: str,
    ) -> None:
        """Timings under which a leader could overlap its successor raise ConfigError."""
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
        with pytest.raises(ConfigError, match=problem):
            LeaderElector(
                lock,
                identity="a",
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                on_started_leading=lambda: None,
                on_stopped_leading=lambda: None,
            )

    def test_timedeltas_are_accepted(self, clients: KubeClients) -> None:
        """Durations may be given as timedeltas, as the configuration holds them."""
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
        elector = LeaderElector(
            lock,
            identity="a",
            lease_duration=timedelta(seconds=15),
            renew_deadline=timedelta(seconds=10),
            retry_period=timedelta(seconds=2),
            on_started_leading=lambda: None,
            on_stopped_leading=lambda: None,
        )
        assert (elector.lease_duration, elector.renew_deadline) == (15.0, 10.0)


class TestTryAcquireOrRenew:
    """LeaderElector.try_acquire_or_renew: client-go's algorithm, one round at a time."""

    def test_first_acquire_creates_the_lease_with_six_digit_times(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """The first replica creates the Lease as holder, times sent as .000000Z MicroTimes."""
        a, callbacks = make_elector("a")
        assert a.try_acquire_or_renew() is True
        spec = stored(kube)
        assert spec == {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "acquireTime": "2025-06-01T12:00:00.000000Z",
            "renewTime": "2025-06-01T12:00:00.000000Z",
            "leaseTransitions": 0,
        }
        (created,) = lease_writes(kube)
        assert created["spec"]["acquireTime"] == "2025-06-01T12:00:00.000000Z"
        assert a.leader_identity == "a"
        assert callbacks.leaders == ["a"]

    def test_second_replica_cannot_take_a_fresh_lease(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """Another replica sees a valid lease held by the first, gives up and writes nothing."""
        a, _ = make_elector("a")
        b, b_callbacks = make_elector("b")
        assert a.try_acquire_or_renew()
        assert b.try_acquire_or_renew() is False
        clock_of(b).advance(14.9)
        assert b.try_acquire_or_renew() is False
        assert len(lease_writes(kube)) == 1
        assert b.leader_identity == "a"
        assert b_callbacks.leaders == ["a"]

    def test_expired_lease_is_taken_over_and_transitions_increment(
        self,
        make_elector: Callable[..., tuple[LeaderElector, Callbacks]],
        kube: KubernetesEmulator,
        kube_clock: KubeClock,
    ) -> None:
        """Once the record stayed unchanged for leaseDurationSeconds on our clock, we take it."""
        a, _ = make_elector("a")
        b, b_callbacks = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(15.001)
        kube_clock.advance(20)
        assert b.try_acquire_or_renew() is True
        spec = stored(kube)
        assert spec["holderIdentity"] == "b"
        assert spec["leaseTransitions"] == 1
        assert spec["acquireTime"] == spec["renewTime"] == "2025-06-01T12:00:20.000000Z"
        assert b_callbacks.leaders == ["a", "b"]

    def test_observed_time_restarts_when_the_record_changes(
        self,
        make_elector: Callable[..., tuple[LeaderElector, Callbacks]],
        kube: KubernetesEmulator,
        kube_clock: KubeClock,
    ) -> None:
        """A renewal seen by the other replica restarts its wait, whatever the renewTime says."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(10)
        # The holder's wall clock lags far behind: only our own clock counts.
        kube_clock.advance(-3600)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(10)
        assert b.try_acquire_or_renew() is False
        clock_of(b).advance(5.001)
        assert b.try_acquire_or_renew() is True
        assert stored(kube)["holderIdentity"] == "b"

    def test_renewal_keeps_acquire_time_and_transitions(
        self,
        make_elector: Callable[..., tuple[LeaderElector, Callbacks]],
        kube: KubernetesEmulator,
        kube_clock: KubeClock,
    ) -> None:
        """The holder's renewal moves renewTime only, keeping acquireTime and leaseTransitions."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(16)
        assert b.try_acquire_or_renew()
        kube_clock.advance(timedelta(seconds=2, microseconds=250))
        assert b.try_acquire_or_renew() is True
        spec = stored(kube)
        assert spec["holderIdentity"] == "b"
        assert spec["acquireTime"] == "2025-06-01T12:00:00.000000Z"
        assert spec["renewTime"] == "2025-06-01T12:00:02.000250Z"
        assert spec["leaseTransitions"] == 1

    def test_losing_the_write_race_is_a_lost_round(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """When the Lease changes between our GET and PUT, the PUT gets 409 and we do not lead."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(16)
        kube.conflict_next_update("leases", NAMESPACE, LEASE)
        assert b.try_acquire_or_renew() is False
        assert any(e.method == "PUT" and e.status == 409 for e in kube.log)
        assert stored(kube)["holderIdentity"] == "a"
        assert b.try_acquire_or_renew() is True

    def test_of_two_racers_only_one_wins(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """Two replicas writing with the same resourceVersion: the second PUT gets 409."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        c, _ = make_elector("c")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        assert not c.try_acquire_or_renew()
        clock_of(b).advance(16)
        clock_of(c).advance(16)
        # Both read the same expired record; b's write lands first, c's carries the stale version.
        snapshot = b.lock.get()
        assert snapshot is not None
        assert b.try_acquire_or_renew()
        takeover = LeaderRecord("c", 15, snapshot.renew_time, snapshot.renew_time, 1)
        with pytest.raises(LeaseConflict):
            c.lock.update(takeover, snapshot.resource_version)
        assert stored(kube)["holderIdentity"] == "b"
        assert c.try_acquire_or_renew() is False

    def test_release_writes_an_empty_holder_and_another_acquires_at_once(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """A released lease has no holder and a one-second duration; the next replica takes it."""
        a, _ = make_elector("a")
        b, b_callbacks = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        assert a.release() is True
        spec = stored(kube)
        assert spec["holderIdentity"] == ""
        assert spec["leaseDurationSeconds"] == RELEASED_LEASE_SECONDS
        assert spec["leaseTransitions"] == 0
        assert a.leader_identity is None
        assert b.try_acquire_or_renew() is True
        assert stored(kube)["holderIdentity"] == "b"
        assert stored(kube)["leaseTransitions"] == 1
        assert b_callbacks.leaders == ["a", "b"]

    def test_release_never_touches_a_lease_held_by_another(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """A replica whose lease was taken over releases nothing, though it last saw itself."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(16)
        assert b.try_acquire_or_renew()
        before = kube.get("leases", NAMESPACE, LEASE)
        assert a.release() is False
        assert kube.get("leases", NAMESPACE, LEASE) == before

    def test_replica_that_never_led_does_not_release(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """Releasing without having held the lease makes no request at all."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        requests = len(kube.log)
        assert b.release() is False
        assert len(kube.log) == requests

    @pytest.mark.parametrize(("method", "status"), [("GET", 500), ("PUT", 500), ("POST", 503)])
    def test_server_error_is_a_lost_round_not_a_crash(
        self,
        make_elector: Callable[..., tuple[LeaderElector, Callbacks]],
        kube: KubernetesEmulator,
        method: str,
        status: int,
    ) -> None:
        """An API server error answer makes the round return False; the next round can win."""
        a, _ = make_elector("a")
        if method == "PUT":
            assert a.try_acquire_or_renew()
        kube.fail_next(method, LEASES_PATH, status)
        assert a.try_acquire_or_renew() is False
        assert a.is_leader is False
        assert a.try_acquire_or_renew() is True

    def test_forbidden_write_is_a_lost_round(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """RBAC refusing the Lease update makes renewal fail quietly (False), not raise."""
        a, _ = make_elector("a")
        assert a.try_acquire_or_renew()
        kube.forbid("update", "leases")
        assert a.try_acquire_or_renew() is False

    def test_failing_callback_does_not_stop_the_round(
        self, clients: KubeClients, kube: KubernetesEmulator, kube_clock: KubeClock
    ) -> None:
        """An exception raised by on_new_leader is logged; the round still wins the lease."""

        def broken(holder: str) -> None:
            raise RuntimeError(f"callback broke on {holder}")

        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
        elector = LeaderElector(
            lock,
            identity="a",
            lease_duration=15,
            renew_deadline=10,
            retry_period=2,
            on_started_leading=lambda: None,
            on_stopped_leading=lambda: None,
            on_new_leader=broken,
            clock=Monotonic(),
            wall_clock=kube_clock,
        )
        assert elector.try_acquire_or_renew() is True
        assert stored(kube)["holderIdentity"] == "a"


class TestLeaderElectorLoop:
    """LeaderElector.start/stop: the background loop, with short real durations."""

    @staticmethod
    def fast(
        make_elector: Callable[..., tuple[LeaderElector, Callbacks]],
        identity: str,
        renew_deadline: float = 5.0,
    ) -> tuple[LeaderElector, Callbacks]:
        """An elector with real clocks and a short retry period; a slow machine never loses."""
        return make_elector(
            identity,
            lease_duration=renew_deadline + 1,
            renew_deadline=renew_deadline,
            retry_period=0.05,
            clock=time.monotonic,
            wall_clock=lambda: datetime.now(UTC),
        )

    def test_leads_then_releases_on_stop(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """The loop leads and calls on_started_leading; stop() stops leading, then releases."""
        a, callbacks = self.fast(make_elector, "a")
        a.start()
        callbacks.wait_for(["started"])
        assert a.is_leader is True
        assert stored(kube)["holderIdentity"] == "a"
        a.stop(release=True)
        assert callbacks.calls == ["started", "stopped"]
        assert a.is_leader is False
        assert stored(kube)["holderIdentity"] == ""

    def test_stop_without_start_releases_a_lease_held_by_hand(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """stop(release=True) of an elector driven round by round still gives its lease up."""
        a, callbacks = make_elector("a")
        assert a.try_acquire_or_renew()
        a.stop(release=True)
        assert stored(kube)["holderIdentity"] == ""
        assert callbacks.calls == []

    def test_starting_twice_is_refused(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]]
    ) -> None:
        """A running elector cannot be started a second time."""
        a, callbacks = self.fast(make_elector, "a")
        a.start()
        callbacks.wait_for(["started"])
        with pytest.raises(RuntimeError, match="already running"):
            a.start()

    def test_renewals_failing_past_the_deadline_lose_leadership(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """Refused renewals end leadership within renew_deadline; the loop then acquires again."""
        a, callbacks = self.fast(make_elector, "a", renew_deadline=1.0)
        a.start()
        callbacks.wait_for(["started"])
        kube.forbid("update", "leases")
        callbacks.wait_for(["started", "stopped"])
        assert a.is_leader is False
        kube.allow_all()
        callbacks.wait_for(["started", "stopped", "started"])
        assert a.is_leader is True

    def test_stopping_a_follower_leaves_the_leaders_lease_alone(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """A replica that does not lead stops without writing the Lease another holds."""
        a, a_callbacks = self.fast(make_elector, "a")
        b, b_callbacks = self.fast(make_elector, "b")
        a.start()
        a_callbacks.wait_for(["started"])
        b.start()
        b_callbacks.wait_for_leaders(["a"])
        b.stop(release=True)
        a.stop(release=False)
        assert b_callbacks.calls == []
        assert stored(kube)["holderIdentity"] == "a"
        assert not any(
            entry.method == "PUT" and json.loads(entry.body)["spec"]["holderIdentity"] != "a"
            for entry in kube.log
            if entry.body
        )


def annotations_of(kube: KubernetesEmulator) -> dict[str, str]:
    """The Lease's annotations as the emulator stores them."""
    lease = kube.get("leases", NAMESPACE, LEASE)
    assert lease is not None
    return dict(lease["metadata"].get("annotations") or {})


class TestAnnotations:
    """The Lease's annotations: carried by every write, changed by read-modify-write only."""

    def test_renewals_keep_annotations_others_wrote(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """A request written into the Lease survives the holder's renewals (a PUT replaces all)."""
        a, _ = make_elector("a", holder_annotations={"role": "daemon"})
        assert a.try_acquire_or_renew()
        a.lock.update_annotations(lambda current: {**current, "request": "r1"})
        clock_of(a).advance(2)
        assert a.try_acquire_or_renew()
        assert annotations_of(kube) == {"role": "daemon", "request": "r1"}
        observed = a.observed_record
        assert observed is not None and observed.annotations["request"] == "r1"

    def test_an_annotation_write_is_not_a_renewal(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]]
    ) -> None:
        """Changing annotations leaves the election record as it was: a dead holder's Lease
        still expires on the observer's clock."""
        a, _ = make_elector("a")
        b, _ = make_elector("b")
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        clock_of(b).advance(10)
        b.lock.update_annotations(lambda current: {**current, "request": "r1"})
        clock_of(b).advance(6)
        assert b.try_acquire_or_renew()
        assert b.observed_record is not None
        assert b.observed_record.annotations["request"] == "r1"

    def test_release_removes_only_the_holders_own_annotations(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]], kube: KubernetesEmulator
    ) -> None:
        """The role annotation goes with the holder; a pending request stays for the next one."""
        a, _ = make_elector("a", holder_annotations={"role": "daemon"})
        assert a.try_acquire_or_renew()
        a.update_annotations(lambda current: {**current, "request": "r1"})
        assert a.release()
        assert annotations_of(kube) == {"request": "r1"}
        assert stored(kube)["holderIdentity"] == ""

    def test_update_retries_after_a_concurrent_write(
        self, clients: KubeClients, kube: KubernetesEmulator
    ) -> None:
        """A 409 on the write starts the read-modify-write again; the change sees fresh data."""
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
        moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        lock.create(LeaderRecord("a", 15, moment, moment, 0, annotations={"n": "0"}))
        seen: list[str] = []

        def bump(current: Any) -> dict[str, str]:
            seen.append(current.get("n", ""))
            if len(seen) == 1:  # someone else writes between our read and our write
                lock.update_annotations(lambda c: {**c, "n": "1"})
            return {**current, "n": str(int(current["n"]) + 10)}

        stored_record = lock.update_annotations(bump)
        assert seen == ["0", "1"]
        assert stored_record is not None and stored_record.annotations["n"] == "11"
        assert stored_record.holder == "a"

    def test_update_writes_nothing_when_the_change_says_so(self, clients: KubeClients) -> None:
        """A change answering None, a missing Lease or another holder: nothing is written."""
        lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="a")
        assert lock.update_annotations(lambda current: {"x": "1"}) is None  # no Lease
        moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        lock.create(LeaderRecord("a", 15, moment, moment, 0))
        assert lock.update_annotations(lambda current: None) is None
        assert lock.update_annotations(lambda current: {"x": "1"}, holder="b") is None
        assert lock.get() == LeaderRecord("a", 15, moment, moment, 0)
        assert (lock.get() or LeaderRecord("", 0)).annotations == {}

    def test_the_leading_loop_reports_each_renewal(
        self, make_elector: Callable[..., tuple[LeaderElector, Callbacks]]
    ) -> None:
        """on_renewed gets the stored record, annotations included, after every renewal."""
        records: list[LeaderRecord] = []
        renewed = threading.Event()

        def on_renewed(record: LeaderRecord) -> None:
            records.append(record)
            if len(records) >= 3:
                renewed.set()

        a, callbacks = make_elector(
            "a",
            lease_duration=6,
            renew_deadline=5,
            retry_period=0.05,
            clock=time.monotonic,
            wall_clock=lambda: datetime.now(UTC),
            on_renewed=on_renewed,
            holder_annotations={"role": "daemon"},
        )
        a.start()
        callbacks.wait_for(["started"])
        a.update_annotations(lambda current: {**current, "request": "r1"})
        assert renewed.wait(EVENT_TIMEOUT)
        a.stop(release=True)
        assert all(r.holder == "a" for r in records)
        assert records[-1].annotations == {"role": "daemon", "request": "r1"}
