"""The ``command`` consumer: a program run after the push (``systemctl restart stackstate-agent``).

Its effect cannot be observed afterwards, so the evidence is the run itself: exit status 0 means
switched, and the engine records :func:`~rotator.consumers.base.consumer_token` of the consumer
in the targets' metadata (``done``). :meth:`CommandConsumer.observe` reads that list back: token
present → ``switched``, otherwise ``needs-trigger``. A restarted daemon or another leader thus
never runs the command twice for one value, and a new value (new metadata, empty ``done``) runs
it again.

How :meth:`CommandConsumer.trigger` runs it:

- **No shell.** The argv is executed as given (``PATH`` lookup for a bare name).
- **Timeout.** The command runs in its own session (``start_new_session``), so it and
  everything it started form one process group. When ``timeout`` passes, the whole group gets
  SIGTERM, then SIGKILL :data:`TERM_GRACE` seconds later at the latest, and the state is
  ``failed`` ("timed out after 2m"). ``subprocess.run`` cannot do that: it kills only the
  child and then waits without bound for output a grandchild may hold open. Processes the
  command leaves in the background after *exiting* in time are not killed (a restart script may
  start the agent that way); their output is no longer waited for after :data:`DRAIN_GRACE`.
- **Standard input.** ``/dev/null``, unless ``pass_key="stdin"``: then the new value followed by
  a newline. A request without a value then fails the switch without running anything.
- **Environment.** Minimal (:mod:`rotator.childenv`): ``PATH``, ``HOME``, ``LANG`` and
  ``LC_ALL`` from the rotator's environment when set, the ``env:`` of the configuration, and
  :data:`MANAGED_KEY_ENV` and :data:`FINGERPRINT_ENV` for scripts. Never the rotator's own
  credentials (``STS_SERVICE_TOKEN``, ``VAULT_TOKEN`` ...). As defence in depth every variable
  whose value contains a key value being switched to is dropped (only its name is logged), so
  the value never reaches the command through it.
- **Output.** stdout and stderr are read together; only the last :data:`OUTPUT_TAIL_BYTES` are
  kept (a chatty command costs no memory), and every run of 8 or more characters of a key value
  of the requests, or of any value registered with :func:`rotator.secrets.register_secret`, is
  masked (:func:`rotator.secrets.mask_fragments`) before the output is logged or quoted in a
  reason: a printed prefix of the key is masked too. A value printed in another encoding
  (base64, reversed) cannot be recognised: do not print it.

Outcomes (the reason quotes the last non-empty output line, scrubbed)::

    exit 0 .................................. switched  "exited 0 in 1.2s"
    exit N .................................. failed    "exit N: <last line>"
    killed by a signal ...................... failed    "killed by signal SIGSEGV: <last line>"
    timeout ................................. failed    "timed out after 2m; last output: …"
    program missing ......................... failed    "command not found: systemctl"
    not executable .......................... failed    "permission denied: cannot execute …"

A failure is reported as a ``failed`` state rather than an exception: the command did run (or
could not start) and the engine keeps the previous key and alerts. Logs (structlog) carry the
command, exit code and duration, never the value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Final, Literal

import structlog

from rotator.childenv import child_environment
from rotator.consumers.base import Resolution, SwitchRequest, SwitchState, consumer_token
from rotator.secrets import mask_fragments, redact, registered_secrets
from rotator.timespec import format_duration

log = structlog.get_logger(__name__)

PassKey = Literal["none", "stdin"]

#: Environment variable naming the managed key the command switches to.
MANAGED_KEY_ENV: Final = "ROTATOR_MANAGED_KEY"
#: Environment variable holding the fingerprint (never the value) of the new value.
FINGERPRINT_ENV: Final = "ROTATOR_FINGERPRINT"

#: How much of the command's combined output is kept (the end of it), in bytes.
OUTPUT_TAIL_BYTES: Final = 2048
#: Seconds between SIGTERM and SIGKILL to the process group of a command that timed out.
TERM_GRACE: Final = 5.0
#: Seconds the output is still read after the command exited or was killed; a background
#: process holding it open longer is not waited for.
DRAIN_GRACE: Final = 2.0

#: Bytes kept beyond the tail, so a value cut at the start of the buffer is dropped whole
#: (see :func:`_scrub`); larger than any key value.
_SCRUB_MARGIN: Final = 4096
#: Longest output line quoted in a reason.
_MAX_LINE: Final = 200
_READ_SIZE: Final = 65536


class CommandConsumer:
    """A program run once per new value; exit status 0 means the consumer switched."""

    def __init__(
        self,
        *,
        command: Sequence[str],
        timeout: float,
        pass_key: PassKey = "none",  # noqa: S107 - a mode name, not a password
        env: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Remember the argv and policy, and the command's environment: ``env`` (the
        configuration's ``env:``) over ``PATH``, ``HOME``, ``LANG`` and ``LC_ALL`` of
        ``environ`` (default: the process environment now); nothing else is inherited.

        Raises :class:`ValueError` for an empty argv, a non-positive timeout or an unknown
        ``pass_key`` (the configuration validates these first).
        """
        if not command or not command[0]:
            raise ValueError("command must name a program")
        if timeout <= 0:
            raise ValueError(f"command timeout must be positive, not {timeout}")
        if pass_key not in {"none", "stdin"}:
            raise ValueError(f"pass_key must be 'none' or 'stdin', not {pass_key!r}")
        self.command = tuple(command)
        self.timeout = float(timeout)
        self.pass_key: PassKey = pass_key
        #: Whether the value is written to the command's standard input.
        self.key_on_stdin = pass_key == "stdin"  # noqa: S105 - a mode name, not a password
        self._environ = child_environment(env, environ)

    # -- Consumer protocol ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``command:`` followed by the shell-quoted argv."""
        return f"command:{shlex.join(self.command)}"

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """How rotation plans list this consumer."""
        return "restart"

    def describe(self) -> str:
        """One line for plans and logs."""
        stdin = ", key on stdin" if self.key_on_stdin else ""
        return f"run {shlex.join(self.command)} (timeout {_duration(self.timeout)}{stdin})"

    def resolve(self) -> Resolution:
        """Nothing to find: a command is what the configuration says (it runs on trigger)."""
        return Resolution(self.id)

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """``switched`` when a successful run for this value is recorded in ``done``."""
        # Without the key on stdin one run serves every managed key rotated together (e.g. two
        # keys of one agent): the engine coalesces states sharing a ``workload`` into one call.
        coalesce = None if self.key_on_stdin else self.id
        if consumer_token(self.id) in done:
            return [SwitchState(self.id, "switched", "ran successfully after the push", coalesce)]
        return [
            SwitchState(
                self.id, "needs-trigger", f"not run yet for {request.fingerprint}", coalesce
            )
        ]

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Run the command once for ``requests[0]`` and report how it ended.

        Raises :class:`ValueError` when ``requests`` is empty (a caller bug); every failure of
        the command itself is a ``failed`` state.
        """
        if not requests:
            raise ValueError(f"{self.id}: trigger needs at least one switch request")
        request = requests[0]
        values = [r.value.reveal() for r in requests if r.value is not None and r.value.reveal()]
        stdin: bytes | None = None
        if self.key_on_stdin:
            if request.value is None or not request.value.reveal():
                reason = f"pass_key stdin, but no value was given for key {request.managed_key}"
                log.error("command.not_started", consumer=self.id, reason=reason)
                return dataclasses.replace(state, phase="failed", reason=f"{reason}; not run")
            stdin = (request.value.reveal() + "\n").encode("utf-8")
        environment = self._environment(request, values)
        run = _run(self.command, stdin, environment, self.timeout)
        return self._outcome(state, request, run, values)

    # -- internals -------------------------------------------------------------------------------

    def _environment(self, request: SwitchRequest, values: Sequence[str]) -> dict[str, str]:
        """The command's environment: no variable carrying a value, plus the rotator's hints."""
        environment: dict[str, str] = {}
        dropped: list[str] = []
        for name, text in self._environ.items():
            if any(value in text for value in values):
                dropped.append(name)
            else:
                environment[name] = text
        if dropped:
            log.warning("command.env_dropped", consumer=self.id, variables=sorted(dropped))
        environment[MANAGED_KEY_ENV] = request.managed_key
        environment[FINGERPRINT_ENV] = request.fingerprint
        return environment

    def _outcome(
        self, state: SwitchState, request: SwitchRequest, run: _Run, values: Sequence[str]
    ) -> SwitchState:
        """Turn a finished run into a state, and log it (command, exit code, duration)."""
        argv = shlex.join(self.command)
        facts = {"consumer": self.id, "key": request.managed_key, "command": redact(argv)}
        if run.start_error is not None:
            reason = _start_problem(self.command[0], run.start_error)
            log.warning("command.not_started", **facts, reason=reason)
            return dataclasses.replace(state, phase="failed", reason=reason)
        output = _scrub(run.output, values, truncated=run.truncated)
        last = _last_line(output)
        duration = round(run.duration, 3)
        if run.output_held:
            log.warning("command.output_held", **facts, waited_s=DRAIN_GRACE)
        if run.timed_out:
            reason = f"timed out after {_duration(self.timeout)}"
            if last:
                reason += f"; last output: {last}"
            log.warning("command.timed_out", **facts, duration_s=duration, output=output)
            return dataclasses.replace(state, phase="failed", reason=reason)
        code = run.returncode
        if code == 0:
            log.info("command.finished", **facts, exit_code=0, duration_s=duration)
            log.debug("command.output", **facts, output=output)
            return dataclasses.replace(
                state, phase="switched", reason=f"exited 0 in {run.duration:.1f}s"
            )
        if code is not None and code < 0:
            reason = f"killed by signal {_signal_name(-code)}"
        else:
            reason = f"exit {code}"
        reason += f": {last}" if last else " (no output)"
        log.warning("command.failed", **facts, exit_code=code, duration_s=duration, output=output)
        return dataclasses.replace(state, phase="failed", reason=reason)


# -- running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What happened to one run of the command (raw output, not yet scrubbed)."""

    returncode: int | None = None
    timed_out: bool = False
    output: bytes = b""
    #: Whether output was dropped at the start (the tail is incomplete there).
    truncated: bool = False
    #: Whether a background process still held the output open when we stopped reading.
    output_held: bool = False
    duration: float = 0.0
    start_error: OSError | None = None


class _Tail:
    """The last bytes of a stream, read to its end by :meth:`drain` (in a thread)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._truncated = False

    def drain(self, stream: IO[bytes]) -> None:
        """Read until end of file, keeping only the last ``limit`` bytes; close the stream."""
        with stream:
            while True:
                try:
                    chunk = os.read(stream.fileno(), _READ_SIZE)
                except (OSError, ValueError):
                    return
                if not chunk:
                    return
                with self._lock:
                    self._buffer += chunk
                    if len(self._buffer) > self._limit:
                        del self._buffer[: len(self._buffer) - self._limit]
                        self._truncated = True

    def snapshot(self) -> tuple[bytes, bool]:
        """The bytes kept so far and whether earlier ones were dropped."""
        with self._lock:
            return bytes(self._buffer), self._truncated


def _feed(stream: IO[bytes], data: bytes) -> None:
    """Write ``data`` to the command's stdin and close it; a command that exits unread is fine."""
    try:
        with stream:
            stream.write(data)
    except OSError:
        pass  # BrokenPipeError: the command exited without reading its input


def _run(argv: Sequence[str], stdin: bytes | None, env: dict[str, str], timeout: float) -> _Run:
    """Run ``argv`` in its own session, bounded by ``timeout`` (see the module docstring)."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603 - the configured argv, run without a shell
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return _Run(start_error=exc, duration=time.monotonic() - started)
    assert process.stdout is not None
    tail = _Tail(OUTPUT_TAIL_BYTES + _SCRUB_MARGIN)
    # Daemon threads: a background process the command left behind may hold the pipes open
    # for as long as it lives; the rotator must not wait for it, nor on it at exit.
    reader = threading.Thread(
        target=tail.drain, args=(process.stdout,), name="command-output", daemon=True
    )
    reader.start()
    if stdin is not None:
        assert process.stdin is not None
        threading.Thread(
            target=_feed, args=(process.stdin, stdin), name="command-input", daemon=True
        ).start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
    reader.join(timeout=DRAIN_GRACE)
    output, truncated = tail.snapshot()
    return _Run(
        returncode=process.returncode,
        timed_out=timed_out,
        output=output,
        truncated=truncated,
        output_held=reader.is_alive(),
        duration=time.monotonic() - started,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, then SIGKILL whatever is left of it."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=TERM_GRACE)
    # Also after the leader died: a grandchild may ignore SIGTERM. The group id stays taken
    # while any member lives, so this cannot hit an unrelated process group.
    _signal_group(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        # Unkillable for now (uninterruptible sleep): report the timeout anyway.
        log.error("command.unkillable", pid=process.pid)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:
        # A member changed its credentials (setuid helper): nothing more we may do.
        log.warning("command.kill_refused", pgid=pgid, signal=signum.name)


# -- reporting -----------------------------------------------------------------------------------


def _scrub(raw: bytes, values: Sequence[str], *, truncated: bool) -> str:
    """The output as text, every key value and registered secret masked, at most the tail.

    When the start was dropped, the buffer may begin inside a value, which no search can
    recognise; the first characters (as many as the longest value has bytes) are dropped
    *after* masking, so such a fragment goes, while whole values are already masked.
    """
    text = raw.decode("utf-8", errors="replace")
    secrets = [v for v in values if v]
    text = mask_fragments(text, sorted(secrets, key=len, reverse=True))
    if truncated:
        longest = max(
            (len(v.encode("utf-8")) for v in [*secrets, *registered_secrets()]), default=0
        )
        text = text[longest:]
    return text[-OUTPUT_TAIL_BYTES:]


def _last_line(output: str) -> str:
    """The last non-empty line, printable characters only, shortened for a reason."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return ""
    line = "".join(c if c.isprintable() else "?" for c in lines[-1])
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def _start_problem(program: str, exc: OSError) -> str:
    """Why the command could not start, naming the program (never the environment)."""
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: cannot execute {program}"
    return f"cannot start {program}: {exc.strerror or type(exc).__name__}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _duration(seconds: float) -> str:
    """``2m``, ``1m30s`` for whole seconds; ``0.5s`` otherwise."""
    if seconds >= 1 and seconds == int(seconds):
        return format_duration(timedelta(seconds=seconds))
    return f"{seconds:g}s"
