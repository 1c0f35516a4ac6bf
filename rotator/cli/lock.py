"""A host-local lock so two one-shot ``rotator rotate`` runs (cron overlap) never act at once.

Replicas on several hosts use leader election instead; this lock covers the cron case, where
a slow run and the next scheduled one could otherwise both create keys for the same managed key.

**Where.** ``--lock-file`` when given; else one lock per configuration file in
``$XDG_RUNTIME_DIR`` (the user's private runtime directory); else in a directory of its own,
``<tmp>/rotator-<uid>/``, created with mode 0700. A predictable name directly in a
world-writable directory such as ``/tmp`` would let another local user take the lock first
(every run then refuses to start) or plant a symlink there. So the lock's directory must be a
real directory (not a symlink) owned by the user running the rotator and writable by nobody
else, and the lock file is opened without following a symlink and must be a regular file owned
by that user; otherwise the run stops with a configuration error (exit 2) and an alert.

**Who holds it.** The holder writes its pid, host and start time (UTC) into the file and empties
it again when it lets go. A run that finds the lock held says by whom and since when (exit 1).
When the holder has held it for more than :data:`HUNG_AFTER_PERIODS` times the shortest schedule
interval of the configuration, that run is likely hung (a consumer that never returns, a process
stopped by a debugger): the run that finds it alerts (``rotation_failed``, step ``preflight``,
category ``human``) and exits 1 with a message naming the pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rotator.errors import Category, ConfigError, RotatorError

if TYPE_CHECKING:
    from rotator.config import RotatorConfig

#: A run holding the lock longer than this many shortest schedule intervals is reported hung.
HUNG_AFTER_PERIODS: Final = 3
#: The lock's directory and file must not be writable by group or others.
_FOREIGN_WRITE: Final = stat.S_IWGRP | stat.S_IWOTH
#: Upper bound of the holder record read back (it is a few dozen bytes).
_MAX_RECORD_BYTES: Final = 4096


class LockHeld(RotatorError):
    """Another run holds the lock (exit 1)."""

    def __init__(self, message: str, *, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class LockUnavailable(ConfigError):
    """The lock cannot be created safely (exit 2): an unsafe directory or file, or an OS error."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as written in the lock file."""

    pid: int
    host: str
    started_at: datetime

    def to_json(self) -> str:
        """The record written into the lock file."""
        started = self.started_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return json.dumps({"pid": self.pid, "host": self.host, "started_at": started})

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The record read back; None when the file is empty or not such a record."""
        try:
            data = json.loads(text)
            started = datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00"))
            pid, host = data["pid"], data["host"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
            return None
        if started.tzinfo is None:
            return None
        return cls(pid=pid, host=host, started_at=started)

    def describe(self, now: datetime) -> str:
        """``pid 123 on host-a since 2026-01-02 03:04:05Z (2h10m ago)``."""
        from rotator.timespec import format_duration  # noqa: PLC0415 - keep imports light

        held = format_duration(max(now - self.started_at, timedelta(0)))
        return (
            f"pid {self.pid} on {self.host} since {self.started_at:%Y-%m-%d %H:%M:%S}Z ({held} ago)"
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- where ----------------------------------------------------------------------------------


def lock_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The directory of default lock files: ``$XDG_RUNTIME_DIR``, else ``<tmp>/rotator-<uid>``
    (created 0700); either is checked (:func:`check_private_directory`)."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        directory = Path(runtime)
        check_private_directory(directory, "XDG_RUNTIME_DIR")
        return directory
    directory = Path(tempfile.gettempdir()) / f"rotator-{os.geteuid()}"
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass  # made by an earlier run, or by someone else: the check below tells
    except OSError as exc:
        raise LockUnavailable(
            f"run lock: cannot create directory {directory}: {exc.strerror}; "
            "give --lock-file in a directory of your own"
        ) from None
    check_private_directory(directory, "the lock directory")
    return directory


def check_private_directory(directory: Path, what: str) -> None:
    """Refuse a lock directory that is a symlink, not a directory, owned by another user, or
    writable by group or others (LockUnavailable)."""
    try:
        info = directory.lstat()
    except OSError as exc:
        raise LockUnavailable(f"run lock: {what} {directory}: {exc.strerror}") from None
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symlink"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    elif info.st_mode & _FOREIGN_WRITE:
        problem = f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem is not None:
        raise LockUnavailable(
            f"run lock: {what} {directory} {problem}; refusing to keep the lock there "
            "(another user could take or replace it); fix it or give --lock-file"
        )


def default_lock_path(config_path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """One lock file per configuration file, in :func:`lock_directory`."""
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:16]
    return lock_directory(environ) / f"rotator-{digest}.lock"


# -- the lock ---------------------------------------------------------------------------------


def _open_lock_file(path: Path) -> int:
    """Open (or create, 0600) the lock file without following a symlink; check what it is."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        reason = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise LockUnavailable(f"run lock: cannot open {path}: {reason}") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by uid {info.st_uid}, not by this user"
    elif info.st_mode & _FOREIGN_WRITE:
        problem = f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem is not None:
        os.close(fd)
        raise LockUnavailable(f"run lock: {path} {problem}; refusing to use it")
    return fd


def _read_holder(fd: int) -> Holder | None:
    try:
        text = os.pread(fd, _MAX_RECORD_BYTES, 0).decode("utf-8", "replace")
    except OSError:
        return None
    return Holder.from_json(text) if text.strip() else None


@contextlib.contextmanager
def run_lock(path: Path, *, clock: Callable[[], datetime] = _utc_now) -> Iterator[Holder]:
    """Hold an exclusive, non-blocking lock on ``path`` for the duration of the block.

    Yields the :class:`Holder` record written into the file (``clock`` gives its start time).
    Raises :class:`LockHeld` (with the holder, when it wrote one) when another process holds
    it, :class:`LockUnavailable` when the file is unsafe or cannot be opened.
    """
    fd = _open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            who = f" ({holder.describe(clock())})" if holder is not None else ""
            raise LockHeld(
                f"another rotator run holds {path}{who}; not starting a second one at the "
                "same time",
                holder=holder,
            ) from None
        me = Holder(pid=os.getpid(), host=socket.gethostname(), started_at=clock())
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.to_json().encode() + b"\n", 0)
        try:
            yield me
        finally:
            # Emptied while still held, so nobody mistakes this record for a later holder's.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


# -- the lock of ``rotate``: alerts and hung runs ---------------------------------------------


def shortest_interval(config: RotatorConfig, now: datetime) -> timedelta:
    """The shortest time between two scheduled runs of any managed key (interval, or the gap
    between the next two times of a cron schedule)."""
    from rotator.config import cron_trigger  # noqa: PLC0415 - keep --help fast

    gaps: list[timedelta] = []
    for key in config.keys:
        schedule = key.policy.schedule
        if schedule.interval is not None:
            gaps.append(schedule.interval)
        elif schedule.cron is not None:
            trigger = cron_trigger(schedule.cron)
            first = trigger.get_next_fire_time(None, now)
            second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
            if first is not None and second is not None:
                gaps.append(second - first)
    return min(gaps, default=timedelta(hours=1))


def _alive_here(holder: Holder) -> bool:
    """False only when the holder ran on this host and its pid is gone (a stale record)."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def rotation_lock(
    config: RotatorConfig,
    config_path: Path,
    lock_file: Path | None = None,
    *,
    clock: Callable[[], datetime] = _utc_now,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Holder]:
    """The lock of one ``rotate`` run: ``lock_file``, else one per configuration file.

    Alerts (``rotation_failed``, step ``preflight``) when the lock cannot be created safely
    (then raises :class:`LockUnavailable`, exit 2) and when it is held by a run that looks
    hung (then raises :class:`LockHeld` naming its pid, exit 1). Once the lock is taken, an
    earlier such alert is resolved.
    """
    try:
        path = lock_file if lock_file is not None else default_lock_path(config_path, environ)
        with run_lock(path, clock=clock) as me:
            _notify_lock(config, clock(), problem=None)
            yield me
    except LockUnavailable as exc:
        _notify_lock(
            config,
            clock(),
            problem=(str(exc), "fix-config", "RunLockUnavailable", "the run lock is unusable"),
        )
        raise
    except LockHeld as exc:
        holder = exc.holder
        now = clock()
        limit = shortest_interval(config, now) * HUNG_AFTER_PERIODS
        if holder is None or now - holder.started_at <= limit or not _alive_here(holder):
            raise
        from rotator.timespec import format_duration  # noqa: PLC0415 - keep imports light

        message = (
            f"the run lock is held by {holder.describe(now)}, longer than {HUNG_AFTER_PERIODS} "
            f"x the shortest schedule interval ({format_duration(limit)}): that run may be "
            f"hung; check process {holder.pid} (stop it if it is stuck) before the keys expire"
        )
        _notify_lock(
            config,
            now,
            problem=(message, "human", "RunLockHung", f"rotator run pid {holder.pid} looks hung"),
        )
        raise LockHeld(message, holder=holder) from None


def _notify_lock(
    config: RotatorConfig,
    now: datetime,
    *,
    problem: tuple[str, Category, str, str] | None,
) -> None:
    """Send the lock's alert (``problem`` = message, category, error type, summary), or the
    ``recovered`` that resolves an earlier one (``problem`` None; sent only where one was)."""
    if not config.alerts:
        return
    from rotator.alerts.event import Alert, AlertEvent  # noqa: PLC0415 - on use only
    from rotator.wiring import build_alerter  # noqa: PLC0415

    alerter = build_alerter(config, clock=_utc_now)
    run_id = uuid.uuid4().hex[:12]
    if problem is None:
        alert = Alert(
            event=AlertEvent.RECOVERED,
            managed_key=None,
            kind=None,
            key_id=None,
            key_name=None,
            expires_at=None,
            step=None,
            error=None,
            run_id=run_id,
            timestamp=now,
            summary="the run lock is usable and free again",
            resolves="failure",
        )
    else:
        message, category, error_type, summary = problem
        alert = Alert(
            event=AlertEvent.ROTATION_FAILED,
            managed_key=None,
            kind=None,
            key_id=None,
            key_name=None,
            expires_at=None,
            step="preflight",
            error=message,
            run_id=run_id,
            timestamp=now,
            summary=summary,
            category=category,
            error_type=error_type,
        )
    alerter.notify(alert)
