"""A host-local lock so two one-shot ``rotator rotate`` runs (cron overlap) never act at once.

Replicas on several hosts use leader election instead; this lock covers the cron case, where
a slow run and the next scheduled one could otherwise both create keys for the same managed key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rotator.errors import RotatorError


class LockHeld(RotatorError):
    """Another run holds the lock."""


def default_lock_path(config_path: Path) -> Path:
    """One lock file per configuration file, in the runtime directory (or the temp dir)."""
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"rotator-{digest}.lock"


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``path`` for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"another rotator run holds {path}; not starting a second one at the same time"
            ) from None
        yield
    finally:
        os.close(fd)
