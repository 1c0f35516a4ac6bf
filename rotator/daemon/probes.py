"""The daemon's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``, and
what readiness learns from a run (:func:`stackstate_answered`).

:func:`serve_endpoints` starts a small threaded HTTP server in a daemon thread; the answers come
from the callables it is given (the service's ``health()`` and ``readiness()``: a status code and
a JSON body), so this module knows nothing of the service itself. Request logging is off: probes
every few seconds would flood the log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from rotator.daemon.metrics import failure_of
from rotator.engine.model import KeyResult
from rotator.errors import RotatorError, StackStateError

#: A probe's answer: HTTP status and JSON body.
Probe = Callable[[], tuple[int, dict[str, Any]]]


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


def serve_endpoints(
    host: str,
    port: int,
    *,
    registry: CollectorRegistry,
    health: Probe,
    readiness: Probe,
) -> ThreadingHTTPServer:
    """Listen on ``host:port`` (0: a free port) and serve the endpoints in a daemon thread;
    ``shutdown()`` and ``server_close()`` the returned server to stop."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet: probes every few seconds would flood the log."""

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return
            if self.path in ("/healthz", "/readyz"):
                status, body = health() if self.path == "/healthz" else readiness()
                self._send(status, json.dumps(body).encode(), "application/json")
                return
            self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="rotator-http",
        daemon=True,
    ).start()
    return server
