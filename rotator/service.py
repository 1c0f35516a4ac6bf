"""The daemon behind ``rotator run``: APScheduler jobs, leader election, HTTP endpoints, reloads.

- One job per managed key on its ``schedule`` (interval or cron, with jitter), ``max_instances=1``
  and ``coalesce=True``, plus a reconcile job over every key (which also sweeps orphans) and a
  first run of every key right after start-up. Engine runs are serialised: one at a time.
- After a run the key's next look follows :func:`rotator.scheduling.next_check`: ``recheck``
  while a switch-over is in progress, backoff that shrinks towards expiry after a failure.
- With leader election only the leader starts runs; a replica that loses the lease stops
  starting steps at once (the engine checks a guard between keys). A new leader only observes:
  the engine is idempotent, so a handover rotates and restarts nothing by itself.
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
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rotator.alerts.dispatch import Alerter, build_hooks
from rotator.config import RotatorConfig, load_config
from rotator.engine.model import KeySpec, RunReport
from rotator.engine.run import run_once, utc_now
from rotator.errors import ConfigError, RotatorError
from rotator.history import History, alert_state_path
from rotator.leader import LeaderElector, LeaseLock
from rotator.metrics import Metrics
from rotator.notify import config_invalid, config_recovered, publish
from rotator.scheduling import next_check
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

    def _execute(self, names: Sequence[str] | None, *, source: str) -> RunReport | None:
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
                    clock=self.clock,
                    guard=lambda: self.is_leader() and not self._stop.is_set(),
                )
            finally:
                structlog.contextvars.unbind_contextvars("run_id")
            self._after_run(loaded, specs, report, run_id, source)
            return report

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
        listing_failed = any(
            r.plan.failed and r.plan.reason.startswith("cannot list") for r in report.results
        )
        if listing_failed:
            self._stackstate_ok = False
        elif report.results:
            self._stackstate_ok = True

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
