"""Reload on file change: a polling watcher of the daemon's configuration file.

A ConfigMap mounted as a volume is not edited in place: the kubelet writes the new content into
a fresh timestamped directory (``..2026_12_02_03_11_23.12345``), points the ``..data`` symlink at
it with an atomic rename, and removes the old directory; ``config.yaml`` itself is a symlink to
``..data/config.yaml`` that never changes. Watching the file's own inode or an inotify watch on
it therefore misses the update. :class:`ConfigWatcher` instead polls, every few seconds:

1. the path with every symlink resolved, and that file's inode, device, size and mtime;
2. only when one of those changed, the SHA-256 of the content;

and calls ``on_change`` when the content differs from the last one seen. A swap that leaves the
content as it was (another key of the ConfigMap changed), a ``touch`` or an editor's
write-rename of identical bytes reloads nothing. A file that is missing or unreadable for a
moment (between two renames, a ``kubectl cp`` in progress) is not a change: the watcher waits
for it to come back. The daemon's reload keeps the old configuration when the new one is
invalid (exactly as on SIGHUP); the watcher then waits for the next change rather than
retrying, so an invalid file alerts once, not every poll.

No dependency and no inotify: polling costs one ``stat`` per interval and works on every file
system, including the projected volumes of Kubernetes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger(__name__)

#: Seconds between two looks at the configuration file.
WATCH_INTERVAL: Final = 2.0


@dataclass(frozen=True)
class FileState:
    """What one look at the configuration file saw."""

    #: The path with every symlink resolved (``..2026_xx/config.yaml`` in a ConfigMap mount).
    resolved: str
    inode: int
    device: int
    size: int
    mtime_ns: int
    #: SHA-256 of the content (hex).
    digest: str

    def same_file(self, other: FileState | None) -> bool:
        """Whether ``other`` saw the same file, unchanged by its stat (content not compared)."""
        return other is not None and (
            self.resolved,
            self.inode,
            self.device,
            self.size,
            self.mtime_ns,
        ) == (other.resolved, other.inode, other.device, other.size, other.mtime_ns)


def look(path: Path, previous: FileState | None = None) -> FileState | None:
    """The state of ``path`` now (None while it is missing or unreadable).

    The content is hashed only when the stat differs from ``previous`` (or there is none).
    """
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
        probe = FileState(
            str(resolved), stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns, ""
        )
        if previous is not None and probe.same_file(previous):
            return previous
        digest = hashlib.sha256(resolved.read_bytes()).hexdigest()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return FileState(probe.resolved, probe.inode, probe.device, probe.size, probe.mtime_ns, digest)


class ConfigWatcher:
    """A daemon thread calling ``on_change`` when the content behind ``path`` changes.

    ``start()`` records the current state as the baseline unless :meth:`rebase` gave one
    (the state looked at just before the configuration was loaded); :meth:`rebase` records one
    (the daemon calls it around a reload it made for another reason, e.g. SIGHUP); ``stop()``
    ends the thread (idempotent) and waits for it.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], object],
        *,
        interval: float = WATCH_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"watch interval must be positive, not {interval}")
        self.path = path
        self.interval = interval
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: FileState | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Take the baseline and start polling."""
        if self._thread is not None:
            return
        with self._lock:
            known = self._state is not None
        if not known:
            self.rebase()
        self._thread = threading.Thread(
            target=self._loop, name="rotator-config-watcher", daemon=True
        )
        self._thread.start()
        log.info("config.watching", path=str(self.path), interval=self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait (bounded) for the thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def rebase(self, state: FileState | None = None) -> None:
        """Take ``state`` (default: the file as it is now) as the content already loaded."""
        fresh = state if state is not None else look(self.path)
        with self._lock:
            if fresh is not None:
                self._state = fresh

    def current(self) -> FileState | None:
        """The file as it is now (for a caller about to load it: see :meth:`rebase`)."""
        with self._lock:
            previous = self._state
        return look(self.path, previous)

    def poll(self) -> bool:
        """Look once; call ``on_change`` when the content changed. True when it did."""
        with self._lock:
            previous = self._state
        seen = look(self.path, previous)
        if seen is None or seen is previous:
            return False
        if previous is not None and seen.digest == previous.digest:
            with self._lock:
                self._state = seen  # a new file or stat, the same content: nothing to load
            return False
        log.info("config.changed", path=str(self.path), resolved=seen.resolved)
        with self._lock:
            # Taken before loading: a change made while loading is seen by the next poll.
            self._state = seen
        self._on_change()
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any one reload
                log.error("config.watch_failed", error_type=type(exc).__name__, error=str(exc))
