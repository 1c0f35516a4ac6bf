"""The HTTP plumbing every emulator shares: a real server on 127.0.0.1, a request log, faults.

An emulator subclasses :class:`Emulator` and implements :meth:`Emulator.handle`, which turns a
:class:`Request` into a :class:`Response`. The base class serves it over real HTTP (optionally
TLS) on an ephemeral port in a background thread, records every request in :attr:`Emulator.log`,
and applies faults that tests arm through :meth:`Emulator.fail_next`,
:meth:`Emulator.add_latency` and :meth:`Emulator.drop_after_processing`. Every request is also
counted in :attr:`Emulator.stats` (:class:`RequestStats`: counts per method and path, and the
most requests served at once), which keeps no bodies; a benchmark turns the log off
(``keep_log = False``) and reads the counts alone.

Faults match on the HTTP method and a regular expression over the path (without query string).
A ``fail`` fault answers with its status without reaching the emulator's logic; a ``drop`` fault
lets the emulator process the request (state changes happen) and then closes the connection
without an answer, which is what a client sees when a response is lost on the way back.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

FaultKind = Literal["fail", "latency", "drop", "hold"]

#: How often the serve loop checks for stop(); stdlib's 0.5 s default would add that to every test.
SERVE_POLL_SECONDS = 0.02

#: Upper bound for one request body; the emulators hold small JSON documents only.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass
class Request:
    """One HTTP request as the emulator sees it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    #: Set once the request is in the log (a held answer logs it early).
    logged: bool = False

    def header(self, name: str) -> str | None:
        """Return a header value by case-insensitive name, or None."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def query_one(self, name: str) -> str | None:
        """Return the first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """Parse the body as JSON; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body)


@dataclass
class Response:
    """What an emulator answers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    raw: bytes | None = None
    #: When set, the answer is sent with chunked transfer encoding, one chunk per item, until
    #: the iterator ends or the client goes away (a Kubernetes watch); ``body``/``raw`` are unused.
    stream: Iterator[bytes] | None = None

    def encoded(self) -> bytes:
        """The body as bytes: ``raw`` when set, else JSON of ``body`` (empty for None)."""
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class LoggedRequest:
    """One line of the request log: what was asked and what was answered."""

    method: str
    path: str
    status: int | None  # None when the connection was dropped without an answer
    query: str = ""
    body: bytes = b""
    response_body: bytes = b""


class RequestStats:
    """Thread-safe request counts and concurrency of the emulators it is attached to.

    Every emulator has its own (:attr:`Emulator.stats`); :meth:`Emulator.track` attaches a
    further one, so one instance shared by several emulators sees their combined concurrency.
    Counts (and answered body bytes) are per ``(method, path)``; ``max_in_flight`` is the most
    requests being served at once (from the request line read to the answer leaving). Unlike
    the request log it keeps no bodies, so a long benchmark can run with ``keep_log`` off.
    """

    def __init__(self, *, ignore: str | None = None) -> None:
        """``ignore``: a regular expression over paths this instance does not count at all."""
        self._ignore = re.compile(ignore) if ignore is not None else None
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._bytes: Counter[tuple[str, str]] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0

    def begin(self, method: str, path: str) -> bool:
        """A request started being served; False when its path is ignored (then the request
        is not counted, and ``answered``/``end`` are not called for it)."""
        if self._ignore is not None and self._ignore.fullmatch(path):
            return False
        with self._lock:
            self._counts[(method, path)] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return True

    def answered(self, method: str, path: str, size: int) -> None:
        """A request is answered with a body of ``size`` bytes."""
        with self._lock:
            self._bytes[(method, path)] += size

    def end(self) -> None:
        """A request's answer was written (or its connection dropped)."""
        with self._lock:
            self._in_flight -= 1

    @property
    def total(self) -> int:
        """Requests counted since the last :meth:`reset`."""
        with self._lock:
            return sum(self._counts.values())

    @property
    def max_in_flight(self) -> int:
        """The most requests served at once since the last :meth:`reset`."""
        with self._lock:
            return self._max_in_flight

    def counts(self) -> Counter[tuple[str, str]]:
        """A copy of the counts per ``(method, path)``."""
        with self._lock:
            return Counter(self._counts)

    def response_bytes(self) -> Counter[tuple[str, str]]:
        """A copy of the answered body bytes per ``(method, path)``."""
        with self._lock:
            return Counter(self._bytes)

    def reset(self) -> None:
        """Forget counts and the in-flight peak (requests being served stay in flight)."""
        with self._lock:
            self._counts.clear()
            self._bytes.clear()
            self._max_in_flight = self._in_flight


class Hold:
    """A request held by :meth:`Emulator.hold`: ``arrived`` is set when it is being held."""

    #: Upper bound of a hold, so a forgotten release never hangs a test run.
    MAX_SECONDS = 60.0

    def __init__(self, *, after_processing: bool) -> None:
        self.after_processing = after_processing
        self.arrived = threading.Event()
        self.aborted = False
        self._released = threading.Event()

    def wait_for_release(self) -> None:
        """Called by the serving thread: signal arrival, then block until released."""
        self.arrived.set()
        self._released.wait(self.MAX_SECONDS)

    def wait_arrived(self, timeout: float = 30.0) -> bool:
        """Block until the held request arrives (True) or the timeout passes (False)."""
        return self.arrived.wait(timeout)

    def release(self) -> None:
        """Let the held request go on."""
        self._released.set()

    def abort(self) -> None:
        """Drop the held request: a hold before processing then never changes state."""
        self.aborted = True
        self._released.set()


@dataclass
class Fault:
    """An armed fault; ``remaining`` None means until cleared."""

    kind: FaultKind
    method: str
    pattern: re.Pattern[str]
    remaining: int | None
    status: int = 500
    body: Any = None
    seconds: float = 0.0
    hold: Hold | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        return (self.method in ("*", method)) and bool(self.pattern.fullmatch(path))


class Emulator:
    """Base of the StackState, Vault and Kubernetes emulators."""

    #: Name printed by ``rotator sandbox``.
    name = "emulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._log: list[LoggedRequest] = []
        self.lock = threading.RLock()
        #: Request counts and concurrency (:class:`RequestStats`), always on.
        self.stats = RequestStats()
        self._trackers: list[RequestStats] = [self.stats]
        #: Whether requests go to :attr:`log` (with their bodies); a benchmark turns it off.
        self.keep_log = True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        handler = _make_handler(self)
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._tls[0], self._tls[1])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            # A short poll interval: stop() waits for the serve loop to notice, once per test.
            target=lambda: server.serve_forever(poll_interval=SERVE_POLL_SECONDS),
            name=f"{self.name}-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (releasing any held request first)."""
        with self.lock:
            for hold in self._holds:
                hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (https with TLS)."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    # -- request log -------------------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        """A copy of every request served so far, oldest first."""
        with self.lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the request log."""
        with self.lock:
            self._log.clear()

    def track(self, stats: RequestStats) -> None:
        """Count this emulator's requests in ``stats`` too (e.g. one shared by all emulators)."""
        with self.lock:
            if all(tracker is not stats for tracker in self._trackers):
                self._trackers = [*self._trackers, stats]

    def _begin_request(self, method: str, path: str) -> list[RequestStats]:
        with self.lock:
            trackers = self._trackers
        return [tracker for tracker in trackers if tracker.begin(method, path)]

    def mutating_requests(self) -> list[LoggedRequest]:
        """Logged requests whose method changes state (POST, PUT, PATCH, DELETE)."""
        return [r for r in self.log if r.method in {"POST", "PUT", "PATCH", "DELETE"}]

    # -- faults ------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        count: int | None = 1,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (None: until cleared).

        ``body`` defaults to the emulator's own error body for that status.
        """
        self._arm(Fault("fail", method.upper(), re.compile(path_pattern), count, status, body))

    def add_latency(
        self, method: str, path_pattern: str, seconds: float, *, count: int | None = None
    ) -> None:
        """Delay matching requests by ``seconds`` before they are processed."""
        self._arm(
            Fault("latency", method.upper(), re.compile(path_pattern), count, seconds=seconds)
        )

    def drop_after_processing(self, method: str, path_pattern: str, *, count: int = 1) -> None:
        """Process the next matching requests, then close the connection without answering."""
        self._arm(Fault("drop", method.upper(), re.compile(path_pattern), count))

    def hold(self, method: str, path_pattern: str, *, after_processing: bool = False) -> Hold:
        """Hold the next matching request until released: before it is processed, or after
        (state changed, answer not yet sent). Tests use it to kill a client at an exact step.
        """
        hold = Hold(after_processing=after_processing)
        fault = Fault("hold", method.upper(), re.compile(path_pattern), 1, hold=hold)
        self._arm(fault)
        with self.lock:
            self._holds.append(hold)
        return hold

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self.lock:
            self._faults.clear()

    def _arm(self, fault: Fault) -> None:
        with self.lock:
            self._faults.append(fault)

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        """Consume one use of each matching fault (at most one per kind) and return them."""
        taken: list[Fault] = []
        with self.lock:
            seen: set[str] = set()
            for fault in list(self._faults):
                if fault.kind in seen or not fault.matches(method, path):
                    continue
                seen.add(fault.kind)
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return taken

    # -- to implement ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; subclasses implement the API."""
        raise NotImplementedError

    def error_response(self, status: int, message: str) -> Response:
        """The API's own error body for an injected failure; subclasses override."""
        return Response(status, {"error": message})

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> tuple[Response | None, bool]:
        """Apply faults and the emulator logic; returns (response, drop_connection)."""
        faults = self._take_faults(request.method, request.path)
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(fault.seconds)
        for fault in faults:
            if fault.kind == "fail":
                if fault.body is not None:
                    return Response(fault.status, fault.body), False
                return self.error_response(fault.status, "injected fault"), False
        holds = [f.hold for f in faults if f.hold is not None]
        for hold in holds:
            if not hold.after_processing:
                hold.wait_for_release()
                if hold.aborted:
                    return None, True
        try:
            response = self.handle(request)
        except Exception as exc:  # noqa: BLE001 - an emulator bug must answer 500, not hang
            response = self.error_response(500, f"emulator error: {type(exc).__name__}")
        after = [hold for hold in holds if hold.after_processing]
        if after:
            # The state changed: log it now, so a test that kills the client while the answer
            # is held already sees the request; the handler then does not log it again.
            self.record(request, response)
            request.logged = True
            for hold in after:
                hold.wait_for_release()
        drop = any(f.kind == "drop" for f in faults)
        return response, drop

    def record(self, request: Request, response: Response | None) -> None:
        """Append one line to the request log."""
        entry = LoggedRequest(
            method=request.method,
            path=request.path,
            status=None if response is None else response.status,
            query="&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs),
            body=request.body,
            response_body=b"" if response is None else response.encoded(),
        )
        with self.lock:
            self._log.append(entry)


def _make_handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY each answer waits
        # for the peer's delayed ACK (~40 ms), which makes every emulator call slow.
        disable_nagle_algorithm = True
        server_version = f"rotator-sandbox-{emulator.name}"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Silence the stdlib access log; the emulator keeps its own."""

        #: The RequestStats counting the request being served (emptied once it is answered).
        _trackers: list[RequestStats] = []  # noqa: RUF012 - replaced per request, never mutated

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionResetError:
                # A client closed an idle keep-alive connection with a reset (its process
                # ended): nothing was being served, so nothing is worth a traceback.
                self.close_connection = True

        def _serve(self) -> None:
            self._trackers = emulator._begin_request(self.command, urlsplit(self.path).path)
            try:
                self._serve_counted()
            finally:
                self._end_tracking()

        def _end_tracking(self) -> None:
            trackers, self._trackers = self._trackers, []
            for tracker in trackers:
                tracker.end()

        def end_headers(self) -> None:
            # The request stops counting as in flight just before its answer leaves: a client
            # cannot send its next request before it has the answer, so one that sends one
            # request at a time is never seen with two in flight.
            self._end_tracking()
            super().end_headers()

        def _serve_counted(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=dict(self.headers.items()),
                body=body,
            )
            response, drop = emulator.dispatch(request)
            if drop or response is None:
                if not request.logged and emulator.keep_log:
                    emulator.record(request, None)
                self.close_connection = True
                self._end_tracking()
                _hard_close(self.connection)
                return
            if not request.logged and emulator.keep_log:
                emulator.record(request, response)
            if response.stream is not None:
                self._send_stream(response, response.stream)
                return
            payload = b"" if request.method == "HEAD" else response.encoded()
            for tracker in self._trackers:
                tracker.answered(request.method, request.path, len(payload))
            try:
                self.send_response(response.status)
                if response.status != 204 and (payload or response.body is not None):
                    self.send_header("Content-Type", response.content_type)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)
            except OSError:
                # The client gave up (timed out) before the answer was written: that is the
                # scenario a latency fault sets up, not an emulator error worth a traceback.
                self.close_connection = True

        def _send_stream(self, response: Response, chunks: Iterator[bytes]) -> None:
            """Send a chunked answer; stop quietly when the client disconnects."""
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

        do_GET = _serve  # noqa: N815 - stdlib naming
        do_POST = _serve  # noqa: N815
        do_PUT = _serve  # noqa: N815
        do_PATCH = _serve  # noqa: N815
        do_DELETE = _serve  # noqa: N815
        do_HEAD = _serve  # noqa: N815
        do_LIST = _serve  # noqa: N815 - Vault's LIST verb

    return Handler


def _hard_close(conn: socket.socket) -> None:
    """Close a connection so the peer sees a reset rather than an orderly empty answer."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def iter_json_lines(log: list[LoggedRequest]) -> Iterator[tuple[LoggedRequest, Any]]:
    """Yield (entry, parsed response JSON) for every logged answer that has a JSON body."""
    for entry in log:
        if entry.response_body:
            try:
                yield entry, json.loads(entry.response_body)
            except ValueError:
                continue
