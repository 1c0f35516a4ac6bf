"""The audit history: one JSON line per managed key per run (plan, actions, outcome, error).

Optional by design: without ``history.path`` nothing is written and the daemon needs no writable
disk. Lines carry what the run report carries (names, ids, fingerprints, reasons) and never a key
value; every string is passed through the redactor once more before it is written. The file is
appended with ``O_APPEND`` (one ``write`` per line, so concurrent writers do not interleave)
and rotated once to ``<path>.1`` past ``max_bytes``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from rotator.engine.model import RunReport
from rotator.errors import RotatorError
from rotator.report import result_document
from rotator.secrets import redact

log = structlog.get_logger(__name__)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


class History:
    """Append-only JSON-lines history in one file."""

    def __init__(self, path: Path, *, max_bytes: int = 10 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def record(self, report: RunReport, *, run_id: str, source: str) -> None:
        """Append one line per managed key of ``report``; failures are logged, not raised."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_large()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                for result in report.results:
                    entry = {
                        "timestamp": report.started_at.isoformat().replace("+00:00", "Z"),
                        "run_id": run_id,
                        "source": source,
                        "dry_run": report.dry_run,
                        **result_document(result, report.started_at),
                    }
                    line = json.dumps(_scrub(entry), separators=(",", ":")) + "\n"
                    os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            # History is for humans; a full disk must never stop a rotation.
            log.warning("history.write_failed", path=str(self.path), error=exc.strerror)

    def _rotate_if_large(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size >= self.max_bytes:
            self.path.replace(self.path.with_name(self.path.name + ".1"))

    def entries(self, *, key: str | None = None) -> Iterator[dict[str, Any]]:
        """Every recorded line, oldest first (the rotated file first), optionally one key's."""
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                handle = path.open(encoding="utf-8")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise RotatorError(f"cannot read history {path}: {exc.strerror}") from exc
            with handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash mid-write
                    if isinstance(entry, dict) and (key is None or entry.get("key") == key):
                        yield entry


def alert_state_path(history_path: Path | None) -> Path | None:
    """Where alert deduplication state is kept: beside the history file (none without one)."""
    return (
        None if history_path is None else history_path.with_name(history_path.name + ".alerts.json")
    )
