"""One actor at a time over the leader-election Lease: ``rotate`` hands its request to the leader.

A run that may write (``rotator rotate`` without ``--dry-run``) uses the same Lease as the
daemon's leader election (``lock: lease``, the default with ``leader_election.enabled``):

* a live daemon holds it — the run writes its request into the Lease's annotations and waits
  for the leader to act on it and write the outcome (``--no-wait``: it returns once the request
  is written);
* another one-shot run holds it — the run waits for the Lease (polling; bounded);
* nobody holds it (absent, released, or expired on our own clock, client-go's rule) — the run
  takes the Lease with its own :class:`~rotator.daemon.leader.LeaderElector`, renews it while it
  runs and releases it afterwards.

**Annotations** (all values JSON; each write is a read-modify-write guarded by the Lease's
``resourceVersion``, see :meth:`rotator.daemon.leader.LeaseLock.update_annotations`):

``rotator.stackstate.io/holder-role``
    ``"daemon"`` or ``"run"``: written by the holder with every renewal, removed on release. Only
    a daemon takes requests.
``rotator.stackstate.io/request``
    ``{"id", "keys", "force", "requester", "requested_at", "expires_at"}`` (plus
    ``"emergency": true`` for ``rotate --emergency``) — one request at a
    time: a requester waits while another request is pending (written, not yet answered, not
    expired). ``keys`` empty means every managed key. A leader ignores (and answers
    ``expired``) a request past ``expires_at``, so a request nobody waits for anymore never runs
    late.
``rotator.stackstate.io/response``
    ``{"id", "state", "leader", "started_at", "finished_at", "exit_code", "error", "report"}``
    — ``state`` is ``running`` (the leader claimed the request: written before it acts, so two
    leaders never both act on one request), then ``done``, or ``expired``/``refused`` (not run:
    ``error`` says why) or ``interrupted`` (its leader stopped while running it). ``report`` is
    the ``rotate --output json`` document; past :data:`MAX_REPORT_BYTES` it is cut down to the
    per-key ``key``, ``kind``, ``decision``, ``reason``, ``outcome``, ``error`` and ``failure``
    (with ``"summarized": true``), since Kubernetes limits all annotations of an object to 256
    KiB together.

A request is picked up by the leader at its next Lease renewal (``on_renewed`` of the elector),
so within ``leader_election.retry_period`` (2s by default) unless a run is in progress: engine
runs are serialised, the request waits for the run before it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Literal, Self

import structlog

from rotator.daemon.leader import (
    AnnotationChange,
    LeaderElector,
    LeaderRecord,
    LeaseLock,
    format_microtime,
)
from rotator.errors import LeaseUnavailable, RotatorError, TemporaryError

log = structlog.get_logger(__name__)

#: Lease annotation naming what kind of process holds it.
ROLE_ANNOTATION: Final = "rotator.stackstate.io/holder-role"
#: Lease annotation carrying the pending ``rotate`` request.
REQUEST_ANNOTATION: Final = "rotator.stackstate.io/request"
#: Lease annotation carrying the leader's answer to the last request.
RESPONSE_ANNOTATION: Final = "rotator.stackstate.io/response"

#: ``holder-role`` of a daemon: it takes requests.
ROLE_DAEMON: Final = "daemon"
#: ``holder-role`` of a one-shot ``rotate``: it takes none; others wait for the Lease.
ROLE_RUN: Final = "run"

#: A report document larger than this (bytes of JSON) is summarised in the response.
MAX_REPORT_BYTES: Final = 64 * 1024

#: How often a waiting requester reads the Lease, at most (seconds): one GET each time.
MAX_POLL_SECONDS: Final = 0.5

ResponseState = Literal["running", "done", "expired", "refused", "interrupted"]
#: States after which the leader writes nothing more for that request.
FINAL_STATES: Final = frozenset({"done", "expired", "refused", "interrupted"})

#: Per-key fields kept when a report is summarised.
_SUMMARY_FIELDS: Final = ("key", "kind", "decision", "reason", "outcome", "error", "failure")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _object(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class RunRequest:
    """A ``rotate`` run asked of the leader: which keys (empty: all) and whether forced."""

    id: str
    keys: tuple[str, ...]
    force: bool
    requester: str
    requested_at: datetime
    expires_at: datetime
    #: ``rotate --emergency``: the leader plans the key with ``emergency`` (a leader that does
    #: not know the field runs a plain forced rotation).
    emergency: bool = False

    @classmethod
    def new(
        cls,
        keys: Sequence[str],
        *,
        force: bool,
        requester: str,
        valid_for: timedelta,
        now: datetime,
        emergency: bool = False,
    ) -> RunRequest:
        """A request with a fresh id, valid for ``valid_for`` from ``now``."""
        return cls(
            id=uuid.uuid4().hex[:16],
            keys=tuple(dict.fromkeys(keys)),
            force=force,
            requester=requester,
            requested_at=now,
            expires_at=now + valid_for,
            emergency=emergency,
        )

    def to_json(self) -> str:
        """The annotation value (``emergency`` only when set)."""
        document: dict[str, Any] = {
            "id": self.id,
            "keys": list(self.keys),
            "force": self.force,
            "requester": self.requester,
            "requested_at": format_microtime(self.requested_at),
            "expires_at": format_microtime(self.expires_at),
        }
        if self.emergency:
            document["emergency"] = True
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> RunRequest | None:
        """The request in the Lease's annotations; None when there is none or it is malformed."""
        data = _object(annotations.get(REQUEST_ANNOTATION))
        if data is None:
            return None
        keys = data.get("keys")
        requested_at = _moment(data.get("requested_at"))
        expires_at = _moment(data.get("expires_at"))
        if (
            not isinstance(data.get("id"), str)
            or not data["id"]
            or not isinstance(keys, list)
            or not all(isinstance(k, str) for k in keys)
            or not isinstance(data.get("force"), bool)
            or requested_at is None
            or expires_at is None
        ):
            return None
        return cls(
            id=data["id"],
            keys=tuple(keys),
            force=data["force"],
            requester=str(data.get("requester") or "?"),
            requested_at=requested_at,
            expires_at=expires_at,
            emergency=data.get("emergency") is True,
        )

    def expired(self, now: datetime) -> bool:
        """Whether nobody waits for this request anymore."""
        return now >= self.expires_at


@dataclass(frozen=True)
class RunResponse:
    """The leader's answer to one request (see the module docstring for the states)."""

    id: str
    state: ResponseState
    leader: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    report: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        """Whether the leader is done with the request."""
        return self.state in FINAL_STATES

    def to_json(self) -> str:
        """The annotation value (the report summarised when too large)."""
        document = {
            "id": self.id,
            "state": self.state,
            "leader": self.leader,
            "started_at": format_microtime(self.started_at) if self.started_at else None,
            "finished_at": format_microtime(self.finished_at) if self.finished_at else None,
            "exit_code": self.exit_code,
            "error": self.error,
            "report": self.report,
        }
        text = json.dumps(document, sort_keys=True)
        if self.report is not None and len(text.encode()) > MAX_REPORT_BYTES:
            document["report"] = summarize_report(self.report)
            text = json.dumps(document, sort_keys=True)
        return text

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> RunResponse | None:
        """The response in the Lease's annotations; None when there is none or it is malformed."""
        data = _object(annotations.get(RESPONSE_ANNOTATION))
        if data is None:
            return None
        state = data.get("state")
        if (
            not isinstance(data.get("id"), str)
            or state not in ("running", *FINAL_STATES)
            or not isinstance(data.get("leader"), str)
        ):
            return None
        exit_code = data.get("exit_code")
        error = data.get("error")
        report = data.get("report")
        return cls(
            id=data["id"],
            state=state,
            leader=data["leader"],
            started_at=_moment(data.get("started_at")),
            finished_at=_moment(data.get("finished_at")),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            error=error if isinstance(error, str) else None,
            report=report if isinstance(report, dict) else None,
        )


def summarize_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report cut down to each key's decision, outcome and failure."""
    keys = report.get("keys")
    return {
        "dry_run": bool(report.get("dry_run")),
        "summarized": True,
        "keys": [
            {name: entry.get(name) for name in _SUMMARY_FIELDS}
            for entry in (keys if isinstance(keys, list) else [])
            if isinstance(entry, dict)
        ],
    }


def exit_code(report: Mapping[str, Any], request: RunRequest) -> int:
    """The exit code ``rotate`` gives a handed-over run, as if it had run the request itself:
    1 when a key failed, or when a forced run of named keys left one blocked."""
    keys = [k for k in report.get("keys") or [] if isinstance(k, dict)]
    failed = any(k.get("outcome") == "failed" for k in keys)
    held = ("blocked", "suspended")
    not_forced = (
        request.force and bool(request.keys) and any(k.get("decision") in held for k in keys)
    )
    return 1 if failed or not_forced else 0


def pending_request(annotations: Mapping[str, str], now: datetime) -> RunRequest | None:
    """The request waiting for the leader: written, unexpired, not finally answered."""
    request = RunRequest.from_annotations(annotations)
    if request is None or request.expired(now):
        return None
    response = RunResponse.from_annotations(annotations)
    if response is not None and response.id == request.id and response.final:
        return None
    return request


def response_to(annotations: Mapping[str, str], request_id: str) -> RunResponse | None:
    """The leader's response to request ``request_id``, if it wrote one."""
    response = RunResponse.from_annotations(annotations)
    return response if response is not None and response.id == request_id else None


def set_response(
    response: RunResponse, *, only_if: Literal["unclaimed", "claimed"] | None = None
) -> AnnotationChange:
    """An annotation change writing ``response`` while its request is still in the Lease.

    ``only_if`` ``"unclaimed"`` writes only when no response to that request exists yet (the
    claim: of two leaders, one wins), ``"claimed"`` only when the current response to it is
    ``running``.
    """

    def change(annotations: Mapping[str, str]) -> Mapping[str, str] | None:
        request = RunRequest.from_annotations(annotations)
        if request is None or request.id != response.id:
            return None  # withdrawn, or replaced by a newer request
        current = response_to(annotations, response.id)
        if only_if == "unclaimed" and current is not None:
            return None
        if only_if == "claimed" and (current is None or current.state != "running"):
            return None
        return {**annotations, RESPONSE_ANNOTATION: response.to_json()}

    return change


class LeaseBusy(TemporaryError):
    """The Lease stayed held by a run that takes no requests, or the leader did not answer."""


@dataclass(frozen=True)
class HandedOver:
    """A request the leader took: ``response`` None when the requester did not wait for it."""

    request: RunRequest
    leader: str
    lease: str
    response: RunResponse | None


class HeldLease:
    """The Lease held by a one-shot run: renewed on a background thread until :meth:`close`."""

    def __init__(self, elector: LeaderElector, lost: threading.Event) -> None:
        self.elector = elector
        self._lost = lost

    def still_held(self) -> bool:
        """Whether no renewal has failed: the engine asks before each key's actions."""
        return not self._lost.is_set()

    def close(self) -> None:
        """Stop renewing and release the Lease (so the next run need not wait for expiry)."""
        self.elector.stop(release=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class LeaseTimings:
    """``leader_election``'s timings, in seconds."""

    lease_duration: float
    renew_deadline: float
    retry_period: float


class LeaseRequester:
    """A one-shot run's side of the Lease: take it, or hand the request to the live daemon.

    ``clock`` is monotonic (deadlines and client-go's observed-time rule); ``wall_clock`` gives
    aware UTC times (request expiry; whether the holder renewed recently).
    """

    def __init__(
        self,
        lock: LeaseLock,
        timings: LeaseTimings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build the run's elector on ``lock`` (its identity is the lock's); nothing is read yet."""
        self.lock = lock
        self.timings = timings
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lost = threading.Event()
        self._unavailable: LeaseUnavailable | None = None
        self.elector = LeaderElector(
            lock,
            identity=lock.identity,
            lease_duration=timings.lease_duration,
            renew_deadline=timings.renew_deadline,
            retry_period=timings.retry_period,
            on_started_leading=lambda: None,
            on_stopped_leading=self._lost.set,
            holder_annotations={ROLE_ANNOTATION: ROLE_RUN},
            clock=clock,
            wall_clock=wall_clock,
        )
        self.poll = min(MAX_POLL_SECONDS, timings.retry_period)

    def claim(self, request: RunRequest, *, timeout: float, wait: bool) -> HeldLease | HandedOver:
        """Hold the Lease for a run of our own, or hand ``request`` to the daemon holding it.

        Waits (polling every :attr:`poll` seconds) while another run holds the Lease or another
        request is pending, and — when ``wait`` — until the leader answered ours.

        :raises LeaseBusy: nothing of that happened within ``timeout`` seconds (a request of
            ours not yet taken by the leader is withdrawn first).
        """
        deadline = self._clock() + timeout
        first: LeaderRecord | None = None
        submitted: LeaderRecord | None = None
        while True:
            if self._try_acquire():
                return self._took_lease(request, submitted is not None)
            record = self.elector.observed_record
            if record is not None and record.holder:
                first = first if first is not None and first.holder == record.holder else record
                if submitted is None and self._takes_requests(record, first):
                    submitted = self._submit(request)
                    if submitted is not None and not wait:
                        return HandedOver(request, submitted.holder, self.lock.describe(), None)
                if submitted is not None:
                    response = response_to(record.annotations, request.id)
                    if response is not None and response.final:
                        return HandedOver(request, response.leader, self.lock.describe(), response)
            if self._clock() >= deadline:
                raise self._give_up(request, submitted is not None, record, timeout)
            self._sleep(self.poll)

    # -- internals -------------------------------------------------------------------------------

    def _try_acquire(self) -> bool:
        """One election round; an unreachable API server is retried until the timeout, other
        failures (forbidden, no such namespace) are raised: waiting would not help."""
        try:
            acquired = self.elector.try_acquire_or_renew(raise_errors=True)
        except LeaseUnavailable as exc:
            self._unavailable = exc
            return False
        self._unavailable = None
        return acquired

    def _takes_requests(self, record: LeaderRecord, first: LeaderRecord) -> bool:
        """A daemon holds the Lease and is alive: it renewed since we first looked, or its
        last renewal is recent by the wall clocks (a dead one is taken over by the elector)."""
        if record.annotations.get(ROLE_ANNOTATION) != ROLE_DAEMON:
            return False
        if record != first:
            return True
        renewed = record.renew_time
        duration = timedelta(seconds=record.lease_duration_seconds)
        return renewed is not None and renewed + duration > self._wall_clock()

    def _submit(self, request: RunRequest) -> LeaderRecord | None:
        """Write ``request`` unless another one is pending; the stored record or None."""
        now = self._wall_clock()

        def change(annotations: Mapping[str, str]) -> Mapping[str, str] | None:
            pending = pending_request(annotations, now)
            if pending is not None and pending.id != request.id:
                log.info("handoff.waiting_for_other_request", other=pending.id)
                return None
            return {**annotations, REQUEST_ANNOTATION: request.to_json()}

        try:
            stored = self.lock.update_annotations(change)
        except RotatorError as exc:
            log.warning("handoff.submit_failed", lease=self.lock.describe(), error=str(exc))
            return None
        if stored is not None:
            log.info(
                "handoff.request_written",
                lease=self.lock.describe(),
                request_id=request.id,
                leader=stored.holder,
                keys=list(request.keys),
                force=request.force,
            )
        return stored

    def _withdraw(self, request: RunRequest, *, as_holder: bool) -> RunResponse | None:
        """Remove our request unless the leader took it; returns the leader's response if so."""
        taken: list[RunResponse] = []

        def change(annotations: Mapping[str, str]) -> Mapping[str, str] | None:
            taken.clear()
            response = response_to(annotations, request.id)
            if response is not None:
                taken.append(response)
                return None
            written = RunRequest.from_annotations(annotations)
            if written is None or written.id != request.id:
                return None
            return {k: v for k, v in annotations.items() if k != REQUEST_ANNOTATION}

        try:
            if as_holder:
                self.elector.update_annotations(change)
            else:
                self.lock.update_annotations(change)
        except RotatorError as exc:
            # Left in place, it expires at expires_at: no leader runs it after that.
            log.warning("handoff.withdraw_failed", request_id=request.id, error=str(exc))
        return taken[0] if taken else None

    def _took_lease(self, request: RunRequest, submitted: bool) -> HeldLease | HandedOver:
        """We hold the Lease: run ourselves, unless a leader already took our request."""
        if submitted:
            response = self._withdraw(request, as_holder=True)
            if response is not None:
                self.elector.release()
                if not response.final:
                    response = RunResponse(
                        id=request.id,
                        state="interrupted",
                        leader=response.leader,
                        started_at=response.started_at,
                        exit_code=1,
                        error=(
                            f"leader {response.leader} stopped while running the request; "
                            "run rotate again: it continues from what the targets hold"
                        ),
                    )
                return HandedOver(request, response.leader, self.lock.describe(), response)
        log.info("handoff.lease_held", lease=self.lock.describe(), identity=self.lock.identity)
        self.elector.start()  # renews (its first round renews what we just took)
        return HeldLease(self.elector, self._lost)

    def _give_up(
        self, request: RunRequest, submitted: bool, record: LeaderRecord | None, timeout: float
    ) -> LeaseBusy:
        holder = record.holder if record is not None and record.holder else "another process"
        lease = self.lock.describe()
        if self._unavailable is not None and not submitted:
            return LeaseBusy(
                f"{self._unavailable.message}; still failing after {timeout:g}s, not starting "
                "(nothing was changed)"
            )
        if submitted:
            response = self._withdraw(request, as_holder=False)
            if response is not None:
                return LeaseBusy(
                    f"lease {lease}: leader {response.leader} took request {request.id} but "
                    f"did not finish it within {timeout:g}s; it goes on without us (see "
                    "`rotator status`)"
                )
            return LeaseBusy(
                f"lease {lease}: leader {holder} did not take request {request.id} within "
                f"{timeout:g}s; the request was withdrawn, nothing was changed"
            )
        role = record.annotations.get(ROLE_ANNOTATION) if record is not None else None
        who = "another rotate run" if role == ROLE_RUN else f"{holder}, which takes no requests,"
        return LeaseBusy(
            f"lease {lease} is held by {who} for longer than {timeout:g}s; not starting a "
            "second writer (nothing was changed)"
        )
