"""The daemon behind ``rotator run``: APScheduler jobs, leader election, HTTP endpoints, reloads.

- One job per distinct ``schedule`` (interval or cron, with jitter: a *batch*), ``max_instances=1``
  and ``coalesce=True``, each running all of its keys in one engine run (one StackState list per
  key kind, whatever the number of keys), plus a reconcile job over every key (which also sweeps
  orphans) and a first run of every key right after start-up. Engine runs are serialised: one at
  a time.
- After a run each key's next look follows :func:`rotator.daemon.scheduling.next_check`:
  ``recheck`` while a switch-over is in progress, backoff that shrinks towards expiry after a
  failure. These looks are batched too: one ``recheck`` job fires at the earliest one due and
  runs every key due by then (within :data:`RECHECK_COALESCE`) together. A key in backoff is
  skipped by its schedule's batch until its retry is due.
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
  reloads the configuration, and so does a change of the file itself (a polling
  :class:`~rotator.daemon.reload.ConfigWatcher` notices an edit and a mounted ConfigMap's
  symlink swap) — an invalid one is rejected, logged and alerted (``config_invalid``) and the
  old one keeps running.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rotator.alerts.dispatch import Alerter
from rotator.config import RotatorConfig, load_config
from rotator.daemon.history import History
from rotator.daemon.leader import LeaderElector, LeaderRecord
from rotator.daemon.metrics import Metrics
from rotator.daemon.notify import config_invalid, config_recovered, publish
from rotator.daemon.probes import serve_endpoints, stackstate_answered
from rotator.daemon.reload import WATCH_INTERVAL, ConfigWatcher
from rotator.daemon.scheduling import Rechecks, Schedule, batches, key_schedules, next_check
from rotator.engine.model import KeySpec, RunReport
from rotator.engine.run import run_once, utc_now
from rotator.errors import ConfigError, RotatorError
from rotator.events import EventRecorder
from rotator.handoff import (
    ROLE_ANNOTATION,
    ROLE_DAEMON,
    RunRequest,
    RunResponse,
    exit_code,
    response_to,
    set_response,
)
from rotator.report import report_document
from rotator.wiring import (
    Runtime,
    build_alerter,
    build_history,
    build_leader_elector,
    build_runtime,
)

log = structlog.get_logger(__name__)

#: How long SIGTERM waits for the run in progress before exiting anyway.
SHUTDOWN_TIMEOUT = 60.0
#: How often readiness re-checks that StackState answers.
READINESS_INTERVAL = timedelta(seconds=60)
#: Full reconcile of every key (includes the orphan sweep), on top of the per-key jobs.
RECONCILE_INTERVAL = timedelta(hours=6)
#: Scheduled runs later than this are skipped (coalesced into the next one).
MISFIRE_GRACE = 300
#: A recheck run also takes the keys whose own recheck is due within this much later.
RECHECK_COALESCE = timedelta(seconds=5)


@dataclass
class _Loaded:
    config: RotatorConfig
    runtime: Runtime
    alerter: Alerter
    history: History | None
    #: Each managed key's schedule, by name (beside its KeySpec, not in it).
    schedules: dict[str, Schedule]
    #: Kubernetes Events about each run (best effort; remembers its series across runs).
    events: EventRecorder | None = None


class Service:
    """One daemon instance; ``start()`` then ``wait()``/``stop()``, or ``run_forever()``."""

    def __init__(
        self,
        config_path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        watch_interval: float | None = WATCH_INTERVAL,
    ) -> None:
        """``watch_interval``: seconds between looks at the configuration file for a change
        (None: reload on SIGHUP only)."""
        self.config_path = config_path
        self.clock = clock
        self.metrics = Metrics()
        self._loaded: _Loaded | None = None
        self._reload_lock = threading.Lock()
        self.watcher = (
            ConfigWatcher(config_path, self.reload, interval=watch_interval)
            if watch_interval is not None
            else None
        )
        self._swap = threading.RLock()
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._failures: dict[str, int] = {}
        #: Looks at keys outside their schedule (switch-over, retry after a failure).
        self._rechecks = Rechecks()
        self._stackstate_ok: bool | None = None
        self._stackstate_error = "not checked yet"
        self._leader: LeaderElector | None = None
        self._leading = threading.Event()
        #: Id of the last handed-over request this replica took up (one at a time).
        self._request_seen: str | None = None
        self._http: ThreadingHTTPServer | None = None
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
        alerter = build_alerter(config, clock=self.clock, on_result=self._alert_result)
        history = build_history(config)
        events = EventRecorder(runtime.kube, clock=self.clock)
        return _Loaded(config, runtime, alerter, history, key_schedules(config.keys), events)

    def _alert_result(self, hook: str, result: str) -> None:
        self.metrics.alerts.labels(hook, result).inc()

    def load(self) -> None:
        """Load the configuration for the first time (a ConfigError propagates: exit 2)."""
        seen = self.watcher.current() if self.watcher is not None else None
        self._loaded = self._build(load_config(self.config_path))
        if self.watcher is not None:
            self.watcher.rebase(seen)
        self.metrics.track_keys(self._loaded.runtime.specs)

    @property
    def loaded(self) -> _Loaded:
        """The configuration and components in use."""
        if self._loaded is None:
            raise RuntimeError("Service.load() was not called")
        return self._loaded

    def reload(self) -> bool:
        """Load the file again (SIGHUP, or the watcher saw it change); keep the old
        configuration when the new one is bad. Reloads are serialised."""
        with self._reload_lock:
            if self._stop.is_set():
                return False
            seen = self.watcher.current() if self.watcher is not None else None
            try:
                return self._reload()
            finally:
                if self.watcher is not None:
                    # What was just loaded (or rejected) is not a change to act on again.
                    self.watcher.rebase(seen)

    def _reload(self) -> bool:
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
            self._rechecks.keep(names)
            self._arm_recheck()
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
        elector = build_leader_elector(
            self.loaded.config,
            self.loaded.runtime.kube,
            on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading,
            on_renewed=self._lease_renewed,
            holder_annotations={ROLE_ANNOTATION: ROLE_DAEMON},
        )
        if elector is None:
            self.metrics.is_leader.set(1)
            return
        self.metrics.is_leader.set(0)
        self._leader = elector
        self._leader.start()

    # -- jobs ------------------------------------------------------------------------------------

    def _run_id(self) -> str:
        return uuid.uuid4().hex[:12]

    def _schedule_keys(self) -> None:
        """One job per batch (distinct schedule) of the configuration in use."""
        for job in self.scheduler.get_jobs():
            if job.id.startswith("schedule:"):
                job.remove()
        loaded = self.loaded
        grouped = batches(loaded.schedules)
        for batch, names in grouped.items():
            self.scheduler.add_job(
                self.run_batch,
                loaded.schedules[names[0]].trigger(),
                args=[batch],
                id=f"schedule:{batch}",
                name=f"{len(names)} key(s) {batch}",
                replace_existing=True,
            )
        log.info("schedule.batches", batches={batch: len(n) for batch, n in grouped.items()})

    def schedule_job(self, name: str) -> Any:
        """The APScheduler job whose batch runs managed key ``name`` (None: no such key)."""
        schedule = self.loaded.schedules.get(name)
        return None if schedule is None else self.scheduler.get_job(f"schedule:{schedule.batch}")

    def recheck_due(self, name: str) -> datetime | None:
        """When managed key ``name`` is looked at outside its schedule (None: not planned)."""
        return self._rechecks.due(name)

    def run_all(self) -> RunReport | None:
        """Run every managed key in one cycle (one list call per kind)."""
        return self._execute(None, source="reconcile")

    def run_key(self, name: str) -> RunReport | None:
        """Run one managed key now (whatever its schedule or backoff)."""
        return self._execute([name], source="schedule")

    def run_batch(self, batch: str) -> RunReport | None:
        """A schedule's job: every key of ``batch`` in one run, except keys in backoff."""

        def due(loaded: _Loaded, now: datetime) -> list[str]:
            names = [n for n, s in loaded.schedules.items() if s.batch == batch]
            waiting = [n for n in names if self._rechecks.in_backoff(n, now)]
            if waiting:
                log.info("schedule.backoff_skipped", batch=batch, keys=waiting)
            return [n for n in names if n not in waiting]

        return self._execute(due, source="schedule")

    def run_rechecks(self) -> RunReport | None:
        """The recheck job: every key whose recheck or retry is due, in one run.

        The keys taken are forgotten first: the run plans their next look again (a standby
        that cannot run them leaves them to the leader's takeover run).
        """
        with self._run_lock:
            names = self._rechecks.take(self.clock() + RECHECK_COALESCE)
            self._arm_recheck()
        return self._execute(names, source="schedule") if names else None

    def _arm_recheck(self) -> None:
        """(Re)schedule the recheck job at the earliest recheck due (caller holds the run lock)."""
        earliest = self._rechecks.earliest()
        if self._stop.is_set():
            return
        if earliest is None:
            if self.scheduler.get_job("recheck") is not None:
                self.scheduler.remove_job("recheck")
            return
        # Never in the past: a trigger later than the misfire grace would be dropped.
        when = max(earliest, self.clock())
        self.scheduler.add_job(
            self.run_rechecks, DateTrigger(when), id="recheck", replace_existing=True
        )

    def _execute(
        self,
        names: Sequence[str] | Callable[[_Loaded, datetime], list[str]] | None,
        *,
        source: str,
        force: bool = False,
        emergency: bool = False,
    ) -> RunReport | None:
        """One engine run over ``names`` (all keys when None; a callable picks them under the
        run lock), serialised with every other run; None when nothing ran. ``emergency``: a
        handed-over ``rotate --emergency`` (the key's rechecks finish its switch-over)."""
        if self._stop.is_set() or not self.is_leader():
            return None
        with self._run_lock:
            loaded = self.loaded
            if callable(names):
                names = names(loaded, self.clock())
            chosen = None if names is None else set(names)
            specs = (
                loaded.runtime.specs
                if chosen is None
                else [s for s in loaded.runtime.specs if s.name in chosen]
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
                    workers=loaded.config.workers,
                    emergency=emergency,
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
        report = self._execute(
            request.keys or None,
            source="request",
            force=request.force,
            emergency=request.emergency,
        )
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
            failed = result.outcome == "failed"
            failures = self._failures.get(spec.name, 0) + 1 if failed else 0
            self._failures[spec.name] = failures
            schedule = loaded.schedules.get(spec.name, Schedule())
            decision = next_check(
                result.outcome,
                failures=failures,
                recheck=schedule.recheck,
                interval=schedule.ceiling,
                expires_at=result.expiration,
                now=now,
            )
            self._rechecks.record(spec.name, decision, failed=failed, now=now)
            if decision.delay is None:
                continue
            log.info(
                "key.next_check", key=spec.name, delay=str(decision.delay), reason=decision.reason
            )
        self._arm_recheck()
        publish(
            report,
            specs,
            alerter=loaded.alerter,
            history=loaded.history,
            run_id=run_id,
            source=source,
            now=now,
            events=loaded.events,
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
        self._http = serve_endpoints(
            settings.host,
            settings.port,
            registry=self.metrics.registry,
            health=self.health,
            readiness=self.readiness,
        )
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
        if self.watcher is not None:
            self.watcher.start()
        log.info("service.started", keys=len(self.loaded.runtime.specs))

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Finish the run in progress (bounded by ``timeout``), release the lease, stop."""
        if self._stop.is_set():
            return
        self._stop.set()
        log.info("service.stopping")
        if self.watcher is not None:
            self.watcher.stop()
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
