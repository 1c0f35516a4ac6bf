"""Leader election over a ``coordination.k8s.io/v1`` Lease, following client-go's algorithm.

The released Python client ships ``kubernetes.leaderelection`` with a ConfigMap lock only (naive
local times, no release on exit), so the Lease lock is built here, in
:mod:`rotator.daemon.lease` (re-exported), on the client's generic ``ApiClient`` calls.

:class:`LeaseLock` reads, creates and replaces one Lease. :class:`LeaderElector` runs client-go's
``tryAcquireOrRenew`` on it:

1. GET the Lease; when it does not exist, create it with us as holder (``acquireTime`` =
   ``renewTime`` = now, ``leaseTransitions`` 0).
2. When the record differs from the one seen last time, remember it together with the *local
   monotonic* time of that observation. Clocks of other replicas are never compared with ours:
   a lease held by someone else is valid while ``observed_time + leaseDurationSeconds > now``,
   both sides measured on our own clock, with the holder's ``leaseDurationSeconds``.
3. A valid lease held by someone else: give up this round.
4. Otherwise write ourselves in with a PUT carrying the ``resourceVersion`` that was read (a
   concurrent writer makes it fail with 409, and we lose the round). Renewing keeps
   ``acquireTime`` and ``leaseTransitions``; a takeover sets ``acquireTime`` to now and
   increments ``leaseTransitions``.

client-go's optimistic fast path (a leader PUTting without the GET) is left out: it saves one
GET per renewal, and the GET keeps every write guarded by a freshly read ``resourceVersion``.

The loop (:meth:`LeaderElector.start`) tries every ``retry_period`` stretched by a random jitter
of up to :data:`JITTER_FACTOR` times while not leading; once leading it calls
``on_started_leading`` and renews every ``retry_period``. When no renewal succeeded within
``renew_deadline`` it gives leadership up at once (``on_stopped_leading``) and goes back to
acquiring. :meth:`LeaderElector.stop` with ``release=True`` writes an empty holder and a
one-second duration, like client-go's ``ReleaseOnCancel``, so another replica takes over without
waiting for the lease to expire; a lease someone else holds is never touched.

``MicroTime`` values and the translation of the API's errors (the ``Lease*`` family of
:mod:`rotator.errors`; a 409 is :class:`~rotator.errors.LeaseConflict`) are described in
:mod:`rotator.daemon.lease`. A missing Lease on GET is not an error. The elector treats every
error as a lost round: it logs it and returns False, it never raises from its loop.

**Annotations.** The Lease also carries the hand-over of ``rotator rotate`` requests to the
leader (:mod:`rotator.handoff`) in its annotations. A PUT replaces the whole object, so every
write here carries the annotations of the record it was computed from: a renewal never drops a
request someone wrote meanwhile (a write in between changes the ``resourceVersion``, and the
renewal's PUT gets 409). An elector may set ``holder_annotations`` on every write that makes or
keeps it the holder (the daemon marks itself as one that takes requests) and removes them when
it releases the Lease. Annotations are not part of the election: a record whose annotations
changed is not a renewal (:class:`LeaderRecord` does not compare them).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from rotator.daemon.lease import (
    ANNOTATION_ATTEMPTS,
    MICROTIME_FORMAT,
    AnnotationChange,
    LeaderRecord,
    LeaseLock,
    MicroTime,
    format_microtime,
)
from rotator.errors import ConfigError, LeaseConflict, RotatorError

__all__ = [
    "ANNOTATION_ATTEMPTS",
    "JITTER_FACTOR",
    "MICROTIME_FORMAT",
    "RELEASED_LEASE_SECONDS",
    "AnnotationChange",
    "LeaderElector",
    "LeaderRecord",
    "LeaseLock",
    "MicroTime",
    "format_microtime",
]

log = structlog.get_logger(__name__)

#: The retry period while acquiring is stretched by up to this factor at random (client-go's).
JITTER_FACTOR: Final = 1.2

#: ``leaseDurationSeconds`` written on release, as client-go's ReleaseOnCancel writes it.
RELEASED_LEASE_SECONDS: Final = 1


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class LeaderElector:
    """Elects one leader among replicas through a :class:`LeaseLock` (client-go's algorithm).

    ``clock`` is a monotonic clock in seconds, used for observed times and deadlines;
    ``wall_clock`` gives the aware UTC times written into the Lease.

    ``on_started_leading`` and ``on_stopped_leading`` bracket leadership as the loop holds it;
    ``on_new_leader`` gets the holder's identity whenever a round sees a different replica (or
    us) holding the lease, never an empty holder. ``on_renewed`` gets the stored record (its
    annotations included) after every round of the loop that kept us leading, so a leader sees
    the Lease's annotations every ``retry_period`` without a read of its own. Callbacks run on
    the elector's thread (the caller's, for :meth:`try_acquire_or_renew`); an exception they
    raise is logged and does not stop the election.

    ``holder_annotations`` are written with every record that makes or keeps us the holder and
    removed on release (see the module docstring).
    """

    def __init__(
        self,
        lock: LeaseLock,
        *,
        identity: str,
        lease_duration: float | timedelta,
        renew_deadline: float | timedelta,
        retry_period: float | timedelta,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        on_new_leader: Callable[[str], None] | None = None,
        on_renewed: Callable[[LeaderRecord], None] | None = None,
        holder_annotations: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Check the timings the way client-go does; nothing is read before the first attempt.

        Durations are seconds or timedeltas; the Lease carries ``lease_duration`` in whole
        seconds. ``jitter`` returns a number in [0, 1) scaling the random stretch of the retry
        period.

        :raises ConfigError: identity empty, ``lease_duration`` under one second,
            ``renew_deadline`` not below ``lease_duration``, or ``retry_period`` times
            :data:`JITTER_FACTOR` not below ``renew_deadline``.
        """
        self.lock = lock
        self.identity = identity
        self.lease_duration = _seconds(lease_duration)
        self.renew_deadline = _seconds(renew_deadline)
        self.retry_period = _seconds(retry_period)
        if not identity:
            raise ConfigError("leader election: identity must not be empty")
        if self.retry_period <= 0:
            raise ConfigError("leader election: retry_period must be positive")
        if self.lease_duration < 1:
            raise ConfigError("leader election: lease_duration must be at least one second")
        if self.renew_deadline >= self.lease_duration:
            raise ConfigError("leader election: renew_deadline must be shorter than lease_duration")
        if self.renew_deadline <= self.retry_period * JITTER_FACTOR:
            raise ConfigError(
                "leader election: retry_period must be shorter than "
                f"renew_deadline / {JITTER_FACTOR}"
            )
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._on_renewed = on_renewed
        self._holder_annotations = dict(holder_annotations or {})
        self._clock = clock
        self._wall_clock = wall_clock
        self._jitter = jitter
        # _state guards what other threads read; _attempt serialises whole attempts.
        self._state = threading.Lock()
        self._attempt = threading.Lock()
        self._observed: LeaderRecord | None = None
        self._observed_time = 0.0
        self._reported_leader: str | None = None
        self._leading = False
        self._stop = threading.Event()
        self._release_on_stop = True
        self._thread: threading.Thread | None = None

    # -- state -----------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether we lead: True from ``on_started_leading`` until ``on_stopped_leading``."""
        with self._state:
            return self._leading

    @property
    def leader_identity(self) -> str | None:
        """Holder of the last Lease record seen; None before the first read or when released."""
        with self._state:
            observed = self._observed
        return observed.holder or None if observed is not None else None

    @property
    def observed_record(self) -> LeaderRecord | None:
        """The last Lease record seen or written (None before the first one)."""
        with self._state:
            return self._observed

    # -- the algorithm ---------------------------------------------------------------------------

    def try_acquire_or_renew(self, *, raise_errors: bool = False) -> bool:
        """One round of client-go's ``tryAcquireOrRenew``: True when we hold the lease now.

        Any failure of the API (409 race included) counts as a lost round: it is logged, and
        the answer is False. With ``raise_errors`` a failure other than a lost race is raised
        instead (a one-shot caller stops on a missing namespace or a refused write rather than
        retrying it until its timeout).
        """
        with self._attempt:
            try:
                return self._try_acquire_or_renew()
            except RotatorError as exc:
                if raise_errors and not isinstance(exc, LeaseConflict):
                    raise
                # Losing a write race is routine among replicas; anything else deserves a warning.
                report = log.info if isinstance(exc, LeaseConflict) else log.warning
                report(
                    "leader.attempt_failed",
                    lease=self.lock.describe(),
                    identity=self.identity,
                    error=str(exc),
                )
                return False
            finally:
                self._report_new_leader()

    def _try_acquire_or_renew(self) -> bool:
        now = self._wall_clock()
        ours = LeaderRecord(
            holder=self.identity,
            lease_duration_seconds=max(1, int(self.lease_duration)),
            acquire_time=now,
            renew_time=now,
            transitions=0,
            annotations=self._holder_annotations,
        )
        current = self.lock.get()
        if current is None:
            stored = self.lock.create(ours)
            self._observe(stored)
            log.info("leader.lease_created", lease=self.lock.describe(), identity=self.identity)
            return True

        with self._state:
            if current != self._observed:
                # The record changed: the holder is alive (or a new one came), restart its term.
                self._observed_time = self._clock()
            # Kept even when unchanged: its annotations and resourceVersion are the latest.
            self._observed = current
            valid = self._observed_time + current.lease_duration_seconds > self._clock()
        held_by_us = current.holder == self.identity
        if current.holder and not held_by_us and valid:
            log.debug("leader.held_by_other", lease=self.lock.describe(), holder=current.holder)
            return False

        # Whatever else the Lease carries (a pending request) is written back unchanged.
        annotations = {**current.annotations, **self._holder_annotations}
        if held_by_us:
            record = LeaderRecord(
                holder=self.identity,
                lease_duration_seconds=ours.lease_duration_seconds,
                acquire_time=current.acquire_time or now,
                renew_time=now,
                transitions=current.transitions,
                annotations=annotations,
            )
        else:
            record = LeaderRecord(
                holder=self.identity,
                lease_duration_seconds=ours.lease_duration_seconds,
                acquire_time=now,
                renew_time=now,
                transitions=current.transitions + 1,
                annotations=annotations,
            )
        stored = self.lock.update(record, current.resource_version)
        self._observe(stored)
        if not held_by_us:
            log.info(
                "leader.lease_taken",
                lease=self.lock.describe(),
                identity=self.identity,
                previous=current.holder or None,
                transitions=stored.transitions,
            )
        return True

    def _observe(self, record: LeaderRecord) -> None:
        with self._state:
            self._observed = record
            self._observed_time = self._clock()

    def _report_new_leader(self) -> None:
        with self._state:
            holder = self._observed.holder if self._observed is not None else ""
            if not holder or holder == self._reported_leader:
                return
            self._reported_leader = holder
        log.info("leader.observed", lease=self.lock.describe(), holder=holder)
        if self._on_new_leader is not None:
            self._call("on_new_leader", self._on_new_leader, holder)

    # -- release ---------------------------------------------------------------------------------

    def release(self) -> bool:
        """Give the lease up when we hold it: empty holder, one-second duration; True if written.

        The Lease is read first and written with that ``resourceVersion``, so a lease someone
        else holds (or took meanwhile) is never touched.
        """
        with self._attempt:
            with self._state:
                observed = self._observed
            if observed is None or observed.holder != self.identity:
                return False
            try:
                current = self.lock.get()
                if current is None or current.holder != self.identity:
                    return False
                now = self._wall_clock()
                released = LeaderRecord(
                    holder="",
                    lease_duration_seconds=RELEASED_LEASE_SECONDS,
                    acquire_time=now,
                    renew_time=now,
                    transitions=current.transitions,
                    annotations={
                        name: value
                        for name, value in current.annotations.items()
                        if name not in self._holder_annotations
                    },
                )
                stored = self.lock.update(released, current.resource_version)
            except RotatorError as exc:
                log.warning("leader.release_failed", lease=self.lock.describe(), error=str(exc))
                return False
            self._observe(stored)
            log.info("leader.released", lease=self.lock.describe(), identity=self.identity)
            return True

    # -- annotations -----------------------------------------------------------------------------

    def update_annotations(
        self, change: AnnotationChange, *, require_holder: bool = True
    ) -> LeaderRecord | None:
        """:meth:`LeaseLock.update_annotations`, serialised with this elector's own rounds.

        With ``require_holder`` nothing is written unless we hold the Lease. Returns the stored
        record or None (see :meth:`LeaseLock.update_annotations`); errors are raised.
        """
        with self._attempt:
            stored = self.lock.update_annotations(
                change, holder=self.identity if require_holder else None
            )
            if stored is not None:
                with self._state:
                    if stored == self._observed:
                        # Same election fields: keep the observed time, take the annotations.
                        self._observed = stored
            return stored

    # -- the loop --------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the election on a background daemon thread.

        :raises RuntimeError: the elector is already running.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("leader election is already running")
        self._stop.clear()
        self._release_on_stop = True
        self._thread = threading.Thread(
            target=self._run, name=f"leader-election-{self.lock.name}", daemon=True
        )
        self._thread.start()

    def stop(self, release: bool = True, timeout: float | None = None) -> None:
        """Stop the loop, call ``on_stopped_leading`` when leading, then release the lease.

        ``timeout`` bounds the wait for the thread, which may be in an API call (default: the
        Kubernetes request budget plus a margin). Waits are interruptible, so an idle elector
        stops at once.
        """
        thread = self._thread
        self._release_on_stop = release
        self._stop.set()
        if thread is None:
            # Never started: rounds may still have been driven by hand.
            if release:
                self.release()
            return
        if timeout is None:
            budget = self.lock.clients.request_timeout
            timeout = 3 * budget + self.retry_period + 1.0
        thread.join(timeout)
        if thread.is_alive():
            log.warning("leader.stop_timeout", lease=self.lock.describe(), seconds=timeout)
        else:
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._acquire():
                    break
                self._set_leading(True)
                self._call("on_started_leading", self._on_started)
                self._renew()
                self._set_leading(False)
                self._call("on_stopped_leading", self._on_stopped)
        except Exception:  # rounds and callbacks never raise; a bug here is logged, not lost
            log.exception("leader.loop_crashed", lease=self.lock.describe())
            if self.is_leader:
                self._set_leading(False)
                self._call("on_stopped_leading", self._on_stopped)
        finally:
            # Stop leading before releasing, so the next leader never overlaps with us.
            if self._release_on_stop:
                self.release()

    def _acquire(self) -> bool:
        """Try until we lead (True) or the elector stops (False)."""
        while not self._stop.is_set():
            if self._round():
                log.info("leader.acquired", lease=self.lock.describe(), identity=self.identity)
                return True
            wait = self.retry_period * (1 + self._jitter() * JITTER_FACTOR)
            if self._stop.wait(wait):
                return False
        return False

    def _renew(self) -> None:
        """Renew every ``retry_period`` until a renewal misses ``renew_deadline`` or we stop."""
        self._renewed()
        while not self._stop.wait(self.retry_period):
            deadline = self._clock() + self.renew_deadline
            while not self._round():
                if self._clock() >= deadline or self._stop.is_set():
                    if not self._stop.is_set():
                        log.warning(
                            "leader.lost",
                            lease=self.lock.describe(),
                            identity=self.identity,
                            reason=f"no renewal within {self.renew_deadline:g}s",
                        )
                    return
                if self._stop.wait(self.retry_period):
                    return
            self._renewed()

    def _renewed(self) -> None:
        """Hand the record just stored to ``on_renewed`` (if any)."""
        record = self.observed_record
        if self._on_renewed is not None and record is not None:
            self._call("on_renewed", self._on_renewed, record)

    def _round(self) -> bool:
        """One attempt that never raises: an unexpected failure is logged as a lost round."""
        try:
            return self.try_acquire_or_renew()
        except Exception:  # a bug or an odd answer must not end the election thread
            log.exception("leader.attempt_crashed", lease=self.lock.describe())
            return False

    def _set_leading(self, leading: bool) -> None:
        with self._state:
            self._leading = leading

    def _call(self, name: str, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # a failing callback must not stop the election
            log.exception("leader.callback_failed", callback=name, lease=self.lock.describe())

    def __repr__(self) -> str:
        return f"LeaderElector({self.lock.describe()}, identity={self.identity!r})"
