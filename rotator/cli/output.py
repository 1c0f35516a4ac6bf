"""Rendering helpers for the CLI: plain text tables and RFC 3339 timestamps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click


def rfc3339(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z`` suffix, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(moment: datetime | None, *, never: str = "never") -> str:
    """``yyyy-MM-dd`` in UTC, as the ``sts`` CLI prints expirations."""
    if moment is None:
        return never
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table with a header row; empty cells print as ``-``."""
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [" | ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines += [" | ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (what scripts parse)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))
