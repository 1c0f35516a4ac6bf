"""``command``: run a program with the alert document as JSON on standard input.

- **No shell.** The configured argv is executed as given (``PATH`` lookup for a bare name).
- **Input.** The document of :mod:`rotator.alerts.event`, as one line of JSON plus a newline.
- **Timeout.** The program runs in its own session, so it and everything it started form one
  process group; when the hook's ``timeout`` passes the group gets SIGTERM, then SIGKILL
  :data:`TERM_GRACE` seconds later at the latest.
- **Outcome.** Exit 0 means delivered. Anything else raises
  :class:`~rotator.alerts.base.AlertDeliveryError` quoting the exit status and the last line
  the program wrote to stderr (redacted, shortened). stdout is discarded. A program that
  leaves a background process holding its stderr open counts as timed out (detach it with
  ``>/dev/null 2>&1 &``).

- **Environment.** Minimal (:mod:`rotator.childenv`): ``PATH``, ``HOME``, ``LANG`` and
  ``LC_ALL`` from the rotator's environment when set, plus the hook's ``env:`` from the
  configuration. Never the rotator's own credentials (``STS_SERVICE_TOKEN``, ``VAULT_TOKEN``,
  other hooks' secrets): a notification script gets only what its entry gives it.
- **Masking.** The quoted stderr line has every run of 8 or more characters of a registered
  secret masked (:func:`rotator.secrets.mask_fragments`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Final

from rotator.alerts.base import AlertDeliveryError
from rotator.alerts.event import Alert
from rotator.childenv import child_environment
from rotator.secrets import mask_fragments

#: Seconds between SIGTERM and SIGKILL to the process group of a program that timed out.
TERM_GRACE: Final = 2.0
#: Longest stderr line quoted in an error.
_MAX_LINE: Final = 200


class CommandHook:
    """A local program that receives each alert on standard input."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``env`` (the configuration's ``env:``) goes over ``PATH``, ``HOME``, ``LANG`` and
        ``LC_ALL`` of ``environ`` (default: the process environment now); nothing else is
        inherited. Raises :class:`ValueError` for an empty argv or a non-positive timeout."""
        if not command or not command[0]:
            raise ValueError("command must name a program")
        if timeout <= 0:
            raise ValueError(f"command timeout must be positive, not {timeout}")
        self._name = name
        self._command = list(command)
        self._timeout = timeout
        self._environ = child_environment(env, environ)

    @property
    def name(self) -> str:
        """The hook's name in logs and metrics."""
        return self._name

    def send(self, alert: Alert) -> None:
        """Run the program once; exit 0 means delivered."""
        label = f"command hook {self._name}"
        body = json.dumps(alert.to_document()).encode() + b"\n"
        try:
            process = subprocess.Popen(  # noqa: S603 - the configured argv, run without a shell
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self._environ,
                start_new_session=True,
            )
        except OSError as exc:
            reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror
            raise AlertDeliveryError(
                f"{label}: cannot run {self._command[0]}: {reason}", hook=self._name, retry=False
            ) from None
        try:
            _, stderr = process.communicate(body, timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise AlertDeliveryError(
                f"{label}: timed out after {self._timeout:g}s", hook=self._name
            ) from None
        if process.returncode != 0:
            code = process.returncode
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            last = _last_line(stderr)
            raise AlertDeliveryError(
                f"{label}: {how}" + (f": {last}" if last else ""), hook=self._name
            )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the program's process group, then SIGKILL whatever is left of it."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        try:
            # communicate() also closes the pipes; a grandchild holding them is killed too.
            process.communicate(timeout=TERM_GRACE)
        except subprocess.TimeoutExpired:
            continue
        else:
            if signum is signal.SIGTERM:
                # The leader is gone; a grandchild may still ignore SIGTERM: the group id stays
                # taken while any member lives, so this cannot hit another group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            return


def _last_line(stderr: bytes) -> str:
    """The last non-empty stderr line, redacted, printable, shortened."""
    text = mask_fragments(stderr.decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    line = "".join(c if c.isprintable() else "?" for c in lines[-1])
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."
