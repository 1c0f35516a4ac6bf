"""The daemon behind ``rotator run``: APScheduler jobs, leader election, HTTP endpoints, reloads.

- One job per managed key on its ``schedule`` (interval or cron, with jitter), ``max_instances=1``
  and ``coalesce=True``, plus a reconcile job over every key (which also sweeps orphans) and a
  first run of every key right after start-up. Engine runs are serialised: one at a time.
- After a run the key's next look follows :func:`rotator.daemon.scheduling.next_check`: ``recheck``
  while a switch-over is in progress, backoff that shrinks towards expiry after a failure.
- With leader election only the leader starts runs; a replica that loses the lease stops
  starting steps at once (the engine checks a guard between keys). A new leader only observes:
  the engine is idempotent, so a handover rotates and restarts nothing by itself.
- The leader takes requests a ``rotator rotate`` hands over through the Lease
  (:mod:`rotator.handoff`): each renewal (every ``retry_period``) looks at the Lease's
  annotations; a new request is claimed, run as one more serialised engine run (with its
  ``--key``/``--force``), and answered with the run's report.
- ``/metrics`` (Prometheus), ``/healthz`` (process and scheduler alive), ``/readyz``
  (configuration loaded and StackState reachable at the last check; leader or standby stated).
- SIGTERM/SIGINT finish the run in progress and exit 0 within ``shutdown_timeout``; SIGHUP
  reloads the configuration — an invalid one is rejected, logged and alerted
  (``config_invalid``) and the old one keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rotator.alerts.dispatch import Alerter, build_hooks
from rotator.config import RotatorConfig, load_config
from rotator.daemon.history import History, alert_state_path
from rotator.daemon.leader import LeaderElector, LeaderRecord, LeaseLock
from rotator.daemon.metrics import Metrics, failure_of
from rotator.daemon.notify import config_invalid, config_recovered, publish
from rotator.daemon.scheduling import next_check
from rotator.engine.model import KeyResult, KeySpec, RunReport
from rotator.engine.run import run_once, utc_now
from rotator.errors import ConfigError, RotatorError, StackStateError
from rotator.handoff import (
    ROLE_ANNOTATION,
    ROLE_DAEMON,
    RunRequest,
    RunResponse,
    exit_code,
    response_to,
    set_response,
)
from rotator.timespec import cron_trigger
from rotator.wiring import Runtime, build_runtime

log = structlog.get_logger(__name__)

#: How long SIGTERM waits for the run in progress before exiting anyway.
SHUTDOWN_TIMEOUT = 60.0
#: How often readiness re-checks that StackState answers.
READINESS_INTERVAL = timedelta(seconds=60)
#: Full reconcile of every key (includes the orphan sweep), on top of the per-key jobs.
RECONCILE_INTERVAL = timedelta(hours=6)
#: Scheduled runs later than this are skipped (coalesced into the next one).
MISFIRE_GRACE = 300


def _subclass_names(root: type[RotatorError]) -> frozenset[str]:
    found = {root.__name__}
    for sub in root.__subclasses__():
        found |= _subclass_names(sub)
    return frozenset(found)


#: ``failure.error_type`` values that say StackState itself failed (every StackStateError).
STACKSTATE_ERROR_TYPES: Final = _subclass_names(StackStateError)


def stackstate_answered(results: Sequence[KeyResult]) -> bool | None:
    """Readiness from a run: False when listing keys in StackState failed for any key (a
    failure of step ``observe`` whose error type is a StackState error), True when the run
    observed keys, None for an empty run. Taken from the failure's fields, never its message.
    """
    for result in results:
        failure = failure_of(result)
        if (
            failure is not None
            and failure.step == "observe"
            and failure.error_type in STACKSTATE_ERROR_TYPES
        ):
            return False
    return True if results else None


@dataclass
class _Loaded:
    config: RotatorConfig
    runtime: Runtime
    alerter: Alerter
    history: History | None


class Service:
    """One daemon instance; ``start()`` then ``wait()``/``stop()``, or ``run_forever()``."""

    def __init__(self, config_path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.config_path = config_path
        self.clock = clock
        self.metrics = Metrics()
        self._loaded: _Loaded | None = None
        self._swap = threading.RLock()
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._failures: dict[str, int] = {}
        self._stackstate_ok: bool | None = None
        self._stackstate_error = "not checked yet"
        self._leader: LeaderElector | None = None
        self._leading = threading.Event()
        #: Id of the last handed-over request this replica took up (one at a time).
        self._request_seen: str | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE,
            },
        )

    # -- configuration -------------------------------------------------------------------------

    def _build(self, config: RotatorConfig) -> _Loaded:
        runtime = build_runtime(config)
        alerter = Alerter(
            build_hooks(config.alerts),
            clock=self.clock,
            on_result=self._alert_result,
            state_path=alert_state_path(config.history.path),
        )
        history = (
            History(config.history.path, max_bytes=config.history.max_bytes)
            if config.history.path is not None
            else None
        )
        return _Loaded(config, runtime, alerter, history)

    def _alert_result(self, hook: str, result: str) -> None:
        self.metrics.alerts.labels(hook, result).inc()

    def load(self) -> None:
        """Load the configuration for the first time (a ConfigError propagates: exit 2)."""
        self._loaded = self._build(load_config(self.config_path))
        self.metrics.track_keys(self._loaded.runtime.specs)

    @property
    def loaded(self) -> _Loaded:
        """The configuration and components in use."""
        if self._loaded is None:
            raise RuntimeError("Service.load() was not called")
        return self._loaded

    def reload(self) -> bool:
        """SIGHUP: load the file again; keep the old configuration when the new one is bad."""
        try:
            fresh = self._build(load_config(self.config_path))
        except (ConfigError, RotatorError) as exc:
            log.error("config.reload_rejected", error=str(exc))
            self.loaded.alerter.notify(
                config_invalid(str(exc), now=self.clock(), run_id=self._run_id())
            )
            return False
        with self._swap, self._run_lock:
            old = self._loaded
            self._loaded = fresh
            self._schedule_keys()
            # New keys alert from their first failure; removed keys leave no stale series.
            self.metrics.track_keys(fresh.runtime.specs)
            names = {spec.name for spec in fresh.runtime.specs}
            self._failures = {k: n for k, n in self._failures.items() if k in names}
        if old is not None:
            old.runtime.close()
            # The old alerter knows what it sent: let it resolve an earlier config_invalid.
            old.alerter.notify(config_recovered(now=self.clock(), run_id=self._run_id()))
        log.info("config.reloaded", keys=len(fresh.runtime.specs))
        return True

    # -- leadership ----------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """Whether this replica may start runs (always, without leader election)."""
        return self._leader is None or self._leading.is_set()

    def _started_leading(self) -> None:
        self._leading.set()
        self.metrics.is_leader.set(1)
        log.info("leader.started")
        # A new leader looks at every key once; the engine's idempotence keeps this a no-op
        # when the previous leader left everything in order.
        self.scheduler.add_job(
            self.run_all, DateTrigger(self.clock()), id="takeover", replace_existing=True
        )

    def _stopped_leading(self) -> None:
        self._leading.clear()
        self.metrics.is_leader.set(0)
        log.warning("leader.stopped")

    def _start_election(self) -> None:
        settings = self.loaded.config.leader_election
        if not settings.enabled:
            self.metrics.is_leader.set(1)
            return
        identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        assert settings.namespace is not None
        lock = LeaseLock(
            self.loaded.runtime.kube,
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=identity,
            context=settings.context,
        )
        self.metrics.is_leader.set(0)
        self._leader = LeaderElector(
            lock,
            identity=identity,
            lease_duration=settings.lease_duration.total_seconds(),
            renew_deadline=settings.renew_deadline.total_seconds(),
            retry_period=settings.retry_period.total_seconds(),
            on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading,
            on_renewed=self._lease_renewed,
            holder_annotations={ROLE_ANNOTATION: ROLE_DAEMON},
        )
        self._leader.start()

    # -- jobs ------------------------------------------------------------------------------------

    def _run_id(self) -> str:
        return uuid.uuid4().hex[:12]

    def _schedule_keys(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("key:", "recheck:")):
                job.remove()
        for spec in self.loaded.runtime.specs:
            trigger: Any
            if spec.cron is not None:
                trigger = cron_trigger(spec.cron)
                trigger.jitter = int(spec.jitter.total_seconds()) or None
            else:
                interval = spec.interval or timedelta(hours=1)
                trigger = IntervalTrigger(
                    seconds=interval.total_seconds(),
                    jitter=int(spec.jitter.total_seconds()) or None,
                    timezone=UTC,
                )
            self.scheduler.add_job(
                self.run_key,
                trigger,
                args=[spec.name],
                id=f"key:{spec.name}",
                replace_existing=True,
            )

    def run_all(self) -> RunReport | None:
        """Run every managed key in one cycle (one list call per kind)."""
        return self._execute(None, source="reconcile")

    def run_key(self, name: str) -> RunReport | None:
        """Run one managed key (its scheduled job, or a recheck)."""
        return self._execute([name], source="schedule")

    def _execute(
        self, names: Sequence[str] | None, *, source: str, force: bool = False
    ) -> RunReport | None:
        if self._stop.is_set() or not self.is_leader():
            return None
        with self._run_lock:
            loaded = self.loaded
            specs = (
                loaded.runtime.specs
                if names is None
                else [s for s in loaded.runtime.specs if s.name in names]
            )
            if not specs:
                return None
            run_id = self._run_id()
            structlog.contextvars.bind_contextvars(run_id=run_id)
            try:
                report = run_once(
                    specs,
                    loaded.runtime.stackstate,
                    dry_run=False,
                    force=force,
                    clock=self.clock,
                    guard=lambda: self.is_leader() and not self._stop.is_set(),
                )
            finally:
                structlog.contextvars.unbind_contextvars("run_id")
            self._after_run(loaded, specs, report, run_id, source)
            return report

    # -- requests handed over by ``rotator rotate`` (rotator.handoff) ---------------------------

    def _lease_renewed(self, record: LeaderRecord) -> None:
        """Elector thread, after each renewal: schedule a new request in the Lease to run now."""
        if self._stop.is_set():
            return  # the scheduler is shutting down; the next leader takes the request
        request = RunRequest.from_annotations(record.annotations)
        if request is None or request.id == self._request_seen:
            return
        self._request_seen = request.id
        response = response_to(record.annotations, request.id)
        if response is not None and response.final:
            return
        self.scheduler.add_job(
            self.serve_request,
            DateTrigger(self.clock()),
            args=[request, response],
            id=f"request:{request.id}",
            replace_existing=True,
        )

    def serve_request(self, request: RunRequest, seen: RunResponse | None = None) -> None:
        """Claim ``request``, run it, and write the outcome into the Lease.

        ``seen`` is a response to it found in the Lease: a ``running`` one that this replica
        did not write belongs to a leader that stopped while running it (answered
        ``interrupted``). Errors writing the Lease are logged: the requester then times out.
        """
        elector = self._leader
        if elector is None or self._stop.is_set() or not self.is_leader():
            self._request_seen = None  # look again once leading
            return
        now = self.clock()
        ours = elector.identity
        try:
            if seen is not None:
                self._answer(
                    RunResponse(
                        request.id,
                        "interrupted",
                        seen.leader,
                        started_at=seen.started_at,
                        finished_at=now,
                        exit_code=1,
                        error=f"leader {seen.leader} stopped while running it; run rotate "
                        "again: it continues from what the targets hold",
                    ),
                    only_if="claimed",
                )
                return
            if request.expired(now):
                self._answer(
                    RunResponse(
                        request.id,
                        "expired",
                        ours,
                        finished_at=now,
                        exit_code=1,
                        error="nobody waits for it anymore (expires_at passed)",
                    ),
                    only_if="unclaimed",
                )
                return
            configured = [spec.name for spec in self.loaded.runtime.specs]
            unknown = [name for name in request.keys if name not in configured]
            if unknown:
                self._answer(
                    RunResponse(
                        request.id,
                        "refused",
                        ours,
                        finished_at=now,
                        exit_code=1,
                        error=f"no such managed key on the leader: {', '.join(unknown)}",
                    ),
                    only_if="unclaimed",
                )
                return
            claimed = elector.update_annotations(
                set_response(
                    RunResponse(request.id, "running", ours, started_at=now), only_if="unclaimed"
                )
            )
        except RotatorError as exc:
            log.warning("handoff.claim_failed", request_id=request.id, error=str(exc))
            self._request_seen = None  # try again at the next renewal
            return
        if claimed is None:
            log.info("handoff.not_claimed", request_id=request.id)  # withdrawn or taken
            return
        log.info(
            "handoff.request_taken",
            request_id=request.id,
            requester=request.requester,
            keys=list(request.keys),
            force=request.force,
        )
        report = self._execute(request.keys or None, source="request", force=request.force)
        if report is None and self.is_leader() and not self._stop.is_set():
            report = RunReport(dry_run=False, started_at=now, results=())  # no keys configured
        finished = self.clock()
        if report is None:
            answer = RunResponse(
                request.id,
                "interrupted",
                ours,
                started_at=now,
                finished_at=finished,
                exit_code=1,
                error="leadership was lost or the daemon stopped before the run",
            )
        else:
            from rotator.cli.report import report_document  # noqa: PLC0415 - the JSON contract

            document = report_document(report)
            answer = RunResponse(
                request.id,
                "done",
                ours,
                started_at=now,
                finished_at=finished,
                exit_code=exit_code(document, request),
                report=document,
            )
        try:
            self._answer(answer, only_if="claimed")
        except RotatorError as exc:
            log.warning("handoff.answer_failed", request_id=request.id, error=str(exc))

    def _answer(self, response: RunResponse, *, only_if: Literal["claimed", "unclaimed"]) -> None:
        """Write ``response`` into the Lease (even after losing it: the requester waits)."""
        assert self._leader is not None
        stored = self._leader.update_annotations(
            set_response(response, only_if=only_if), require_holder=False
        )
        log.info(
            "handoff.answered",
            request_id=response.id,
            state=response.state,
            written=stored is not None,
        )

    def _after_run(
        self,
        loaded: _Loaded,
        specs: Sequence[KeySpec],
        report: RunReport,
        run_id: str,
        source: str,
    ) -> None:
        now = self.clock()
        by_name = {s.name: s for s in specs}
        for result in report.results:
            spec = by_name[result.plan.key]
            self.metrics.observe_result(spec, result, now)
            failures = self._failures.get(spec.name, 0) + 1 if result.outcome == "failed" else 0
            self._failures[spec.name] = failures
            decision = next_check(
                result.outcome,
                failures=failures,
                recheck=spec.recheck,
                interval=spec.interval or timedelta(hours=1),
                expires_at=result.expiration,
                now=now,
            )
            if decision.delay is not None and not self._stop.is_set():
                self.scheduler.add_job(
                    self.run_key,
                    DateTrigger(now + decision.delay),
                    args=[spec.name],
                    id=f"recheck:{spec.name}",
                    replace_existing=True,
                )
                log.info(
                    "key.next_check",
                    key=spec.name,
                    delay=str(decision.delay),
                    reason=decision.reason,
                )
        publish(
            report,
            specs,
            alerter=loaded.alerter,
            history=loaded.history,
            run_id=run_id,
            source=source,
            now=now,
        )
        answered = stackstate_answered(report.results)
        if answered is not None:
            self._stackstate_ok = answered

    def check_stackstate(self) -> None:
        """Readiness: does StackState answer?"""
        try:
            self.loaded.runtime.stackstate.server_info()
        except RotatorError as exc:
            self._stackstate_ok = False
            self._stackstate_error = exc.message
            return
        self._stackstate_ok = True
        self._stackstate_error = ""

    # -- HTTP ------------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: the process and its scheduler are alive."""
        alive = self.scheduler.running and not self._stop.is_set()
        return (200 if alive else 503), {"status": "ok" if alive else "stopping"}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: configuration loaded and StackState reachable at the last check."""
        role = "leader" if self.is_leader() else "standby"
        ready = self._loaded is not None and self._stackstate_ok is True
        body = {
            "ready": ready,
            "role": role,
            "config": str(self.config_path),
            "stackstate": "reachable" if self._stackstate_ok else self._stackstate_error,
        }
        return (200 if ready else 503), body

    def _serve_http(self) -> None:
        settings = self.loaded.config.server
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                """Quiet: probes every few seconds would flood the log."""

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    payload = generate_latest(service.metrics.registry)
                    self._send(200, payload, CONTENT_TYPE_LATEST)
                    return
                if self.path in ("/healthz", "/readyz"):
                    status, body = (
                        service.health() if self.path == "/healthz" else service.readiness()
                    )
                    self._send(status, json.dumps(body).encode(), "application/json")
                    return
                self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._http = ThreadingHTTPServer((settings.host, settings.port), Handler)
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._http_thread.start()
        log.info("http.listening", address=f"{settings.host}:{self.http_port}")

    @property
    def http_port(self) -> int:
        """The port the endpoints listen on (useful with ``listen: 127.0.0.1:0``)."""
        assert self._http is not None
        return int(self._http.server_address[1])

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start endpoints, election and scheduler; the first run of every key starts now."""
        if self._loaded is None:
            self.load()
        self._serve_http()
        self._schedule_keys()
        self.scheduler.add_job(
            self.run_all,
            IntervalTrigger(seconds=RECONCILE_INTERVAL.total_seconds(), timezone=UTC),
            id="reconcile",
            next_run_time=self.clock() + timedelta(seconds=1),
        )
        self.scheduler.add_job(
            self.check_stackstate,
            IntervalTrigger(seconds=READINESS_INTERVAL.total_seconds(), timezone=UTC),
            id="readiness",
            next_run_time=self.clock(),
        )
        self.scheduler.start()
        self._start_election()
        log.info("service.started", keys=len(self.loaded.runtime.specs))

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Finish the run in progress (bounded by ``timeout``), release the lease, stop."""
        if self._stop.is_set():
            return
        self._stop.set()
        log.info("service.stopping")
        done = threading.Event()

        def shutdown() -> None:
            self.scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=shutdown, daemon=True).start()
        if not done.wait(timeout):
            log.error("service.shutdown_timeout", seconds=timeout)
        if self._leader is not None:
            self._leader.stop(release=True)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._loaded is not None:
            self._loaded.runtime.close()
        log.info("service.stopped")

    def run_forever(self) -> int:
        """Run until SIGTERM/SIGINT (exit code 0); SIGHUP reloads the configuration."""
        finished = threading.Event()
        reload_requested = threading.Event()

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("service.signal", signal=signal.Signals(signum).name)
            finished.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            reload_requested.set()
            finished.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        self.start()
        while True:
            finished.wait()
            if reload_requested.is_set():
                reload_requested.clear()
                finished.clear()
                self.reload()
                continue
            break
        self.stop()
        return 0
