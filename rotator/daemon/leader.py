"""Leader election over a ``coordination.k8s.io/v1`` Lease, following client-go's algorithm.

The released Python client ships ``kubernetes.leaderelection`` with a ConfigMap lock only (naive
local times, no release on exit), so the Lease lock is built here on ``CoordinationV1Api``.

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

``MicroTime`` values always carry six fractional digits (``2006-01-02T15:04:05.000000Z``): the API
server rejects the form ``datetime.isoformat()`` produces at microsecond 0, and the client
serialises every datetime with ``isoformat()``. :class:`MicroTime` is a ``datetime`` whose
``isoformat`` writes the six digits, so the client's own serialisation sends the right text.

Errors of the API are translated once, in :func:`map_lease_error`::

    409 ....................................... TargetConflict (a concurrent writer won)
    401, 403 .................................. TargetForbidden
    404 (create: no namespace; update: gone),
      400, 422, other 4xx ..................... TargetInvalid
    429, 5xx, connection failures, timeouts ... TargetUnavailable

A missing Lease on GET is not an error: :meth:`LeaseLock.get` returns None. The elector treats
every error as a lost round: it logs it and returns False, it never raises from its loop.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rotator.errors import (
    ConfigError,
    RotatorError,
    TargetConflict,
    TargetError,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.kube import KubeClients, quote_status, status_body, transport_problem

log = structlog.get_logger(__name__)

#: The retry period while acquiring is stretched by up to this factor at random (client-go's).
JITTER_FACTOR: Final = 1.2

#: ``leaseDurationSeconds`` written on release, as client-go's ReleaseOnCancel writes it.
RELEASED_LEASE_SECONDS: Final = 1

#: strftime format of a Kubernetes ``MicroTime`` (always six fractional digits, UTC).
MICROTIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Attempts of a read-modify-write of the annotations before a run of 409s wins.
ANNOTATION_ATTEMPTS: Final = 8

#: ``change`` of :meth:`LeaseLock.update_annotations`: the new annotations, or None to write
#: nothing (the current ones do not allow the change, or already have it).
AnnotationChange = Callable[[Mapping[str, str]], Mapping[str, str] | None]


class MicroTime(datetime):
    """A UTC ``datetime`` that serialises as a Kubernetes ``MicroTime`` with six digits.

    The Python client turns datetimes into JSON with ``isoformat()``; overriding it here makes
    the request carry ``2025-06-01T12:00:00.000000Z`` rather than ``...12:00:00+00:00``.
    """

    @classmethod
    def of(cls, moment: datetime) -> MicroTime:
        """``moment`` (timezone-aware) in UTC as a MicroTime."""
        if moment.tzinfo is None:
            raise ValueError("a MicroTime needs a timezone-aware datetime")
        utc = moment.astimezone(UTC)
        return cls(
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond,
            tzinfo=UTC,
        )

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        """The MicroTime text; ``sep`` and ``timespec`` are ignored (the format is fixed)."""
        return format_microtime(self)


def format_microtime(moment: datetime) -> str:
    """``moment`` (timezone-aware) as a Kubernetes MicroTime: UTC, six fractional digits, Z."""
    if moment.tzinfo is None:
        raise ValueError("a MicroTime needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime(MICROTIME_FORMAT)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaderRecord:
    """The election fields of a Lease's spec; ``holder`` is "" when nobody holds it.

    Two records are equal when their election fields are: ``resource_version`` and
    ``annotations`` are not compared, so "the record changed" means what client-go's raw-record
    comparison means.
    """

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = field(default=None, compare=False)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)


class LeaseLock:
    """One Lease, read and written through ``CoordinationV1Api`` of a kubeconfig context."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        name: str,
        identity: str,
        context: str | None = None,
    ) -> None:
        """Remember where the Lease lives; nothing is read before the first call."""
        self.clients = clients
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.context = context

    def describe(self) -> str:
        """``namespace/name`` of the Lease, for messages."""
        return f"{self.namespace}/{self.name}"

    def get(self) -> LeaderRecord | None:
        """The Lease's record, or None when the Lease does not exist."""
        try:
            lease = self._api().read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.clients.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, "get") from None
        except (urllib3.exceptions.HTTPError, ConfigException) as exc:
            raise self._error(exc, "get") from None
        return _record_of(lease)

    def create(self, record: LeaderRecord) -> LeaderRecord:
        """Create the Lease holding ``record``; returns what the server stored.

        :raises TargetConflict: someone created the Lease first.
        """
        try:
            lease = self._api().create_namespaced_lease(
                self.namespace,
                self._body(record, None),
                _request_timeout=self.clients.request_timeout,
            )
        except (ApiException, urllib3.exceptions.HTTPError, ConfigException) as exc:
            raise self._error(exc, "create") from None
        return _record_of(lease)

    def update(self, record: LeaderRecord, resource_version: str | None) -> LeaderRecord:
        """Replace the Lease's record, guarded by ``resource_version``; returns what was stored.

        :raises TargetConflict: the Lease changed since ``resource_version`` was read.
        """
        try:
            lease = self._api().replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(record, resource_version),
                _request_timeout=self.clients.request_timeout,
            )
        except (ApiException, urllib3.exceptions.HTTPError, ConfigException) as exc:
            raise self._error(exc, "update") from None
        return _record_of(lease)

    def update_annotations(
        self, change: AnnotationChange, *, holder: str | None = None
    ) -> LeaderRecord | None:
        """Read the Lease, let ``change`` compute its new annotations, write them back.

        The write carries the ``resourceVersion`` read and the spec as read, so it changes
        nothing of the election; on 409 the read-modify-write starts again (at most
        :data:`ANNOTATION_ATTEMPTS` times). Returns the stored record, or None when nothing was
        written: the Lease does not exist, ``holder`` is given and does not hold it, or
        ``change`` answered None.

        :raises TargetConflict: every attempt lost to a concurrent writer.
        """
        conflict: TargetConflict | None = None
        for _ in range(ANNOTATION_ATTEMPTS):
            current = self.get()
            if current is None or (holder is not None and current.holder != holder):
                return None
            wanted = change(current.annotations)
            if wanted is None:
                return None
            try:
                return self.update(
                    replace(current, annotations=dict(wanted)), current.resource_version
                )
            except TargetConflict as exc:
                conflict = exc
        assert conflict is not None
        raise conflict

    def __repr__(self) -> str:
        return f"LeaseLock({self.describe()}, identity={self.identity!r}, context={self.context!r})"

    # -- internals -------------------------------------------------------------------------------

    def _api(self) -> Any:
        return self.clients.coordination(self.context)

    def _body(self, record: LeaderRecord, resource_version: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "leaseTransitions": record.transitions,
        }
        # MicroTime instances: the client serialises them with their six-digit isoformat().
        if record.acquire_time is not None:
            spec["acquireTime"] = MicroTime.of(record.acquire_time)
        if record.renew_time is not None:
            spec["renewTime"] = MicroTime.of(record.renew_time)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        if record.annotations:
            metadata["annotations"] = dict(record.annotations)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _error(self, exc: BaseException, verb: str) -> TargetError:
        return map_lease_error(
            exc, lease=self.describe(), verb=verb, timeout=self.clients.request_timeout
        )


def map_lease_error(exc: BaseException, *, lease: str, verb: str, timeout: float) -> TargetError:
    """Translate a kubernetes-client or urllib3 failure of a Lease call (see the module table).

    Messages carry the API server's Status ``message`` at most, never a request or response
    body.
    """
    where = f"lease {lease}: cannot {verb}"
    if isinstance(exc, ConfigException):
        return TargetForbidden(f"{where}: cannot obtain Kubernetes credentials: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return TargetUnavailable(f"{where}: {transport_problem(exc, timeout)}")
    if not isinstance(exc, ApiException):
        return TargetUnavailable(f"{where}: {type(exc).__name__}")
    status = exc.status or 0
    message = quote_status(status_body(exc).get("message") or "")
    said = f": {message}" if message else ""
    if status == 409:
        return TargetConflict(f"{where}: conflict (409){said}")
    if status in (401, 403):
        return TargetForbidden(
            f"{where}: {'unauthorized' if status == 401 else 'forbidden'} ({status}){said}"
        )
    if status == 429 or status >= 500:
        return TargetUnavailable(f"{where}: API server answered {status}{said}")
    if status == 0:
        # The client raises status 0 for TLS failures it caught itself.
        return TargetUnavailable(f"{where}: TLS or transport failure")
    return TargetInvalid(f"{where}: rejected ({status}){said}")


def _record_of(lease: Any) -> LeaderRecord:
    spec = lease.spec
    metadata = lease.metadata
    return LeaderRecord(
        holder=(spec.holder_identity if spec else None) or "",
        lease_duration_seconds=int((spec.lease_duration_seconds if spec else None) or 0),
        acquire_time=_aware(spec.acquire_time if spec else None),
        renew_time=_aware(spec.renew_time if spec else None),
        transitions=int((spec.lease_transitions if spec else None) or 0),
        resource_version=metadata.resource_version if metadata else None,
        annotations=dict((metadata.annotations if metadata else None) or {}),
    )


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
                if raise_errors and not isinstance(exc, TargetConflict):
                    raise
                # Losing a write race is routine among replicas; anything else deserves a warning.
                report = log.info if isinstance(exc, TargetConflict) else log.warning
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
