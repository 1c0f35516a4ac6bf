"""Rendering helpers for the CLI: text tables that fit the terminal, and RFC 3339 timestamps.

Tables adapt to the width of the terminal (``shutil.get_terminal_size``, so ``$COLUMNS`` wins):
when the natural table is wider, the widest columns are narrowed until it fits; a cell with
spaces (a reason, an error) is wrapped onto continuation lines, one without (an id, a name) is
elided in the middle with ``…`` so both its ends stay readable. ``--wide`` prints everything
unelided, and so does output that goes to a pipe or a file without ``$COLUMNS`` (scripts and
``grep`` see whole lines). JSON output never passes through here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: ``click.Context.meta`` entry set by ``--wide``.
WIDE_META = "rotator.wide"
#: A column is never narrowed below this many characters (or its header's width).
MIN_COLUMN = 12
#: Prose columns are narrowed first, down to this many characters.
PROSE_MIN = 30
ELLIPSIS = "…"
SEPARATOR = " | "


def day(moment: datetime | None, *, never: str = "never") -> str:
    """``yyyy-MM-dd`` in UTC, as the ``sts`` CLI prints expirations."""
    if moment is None:
        return never
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


# -- width ---------------------------------------------------------------------------------------


def output_option(human: str) -> Callable[[F], F]:
    """``-o/--output``: ``human`` (``table`` or ``text``) for people, ``json`` for scripts."""
    article = "a table" if human == "table" else "text"
    return click.option(
        "--output",
        "-o",
        type=click.Choice([human, "json"]),
        default=human,
        show_default=True,
        help=f"Output format: {article} for people, json for scripts (a stable document).",
    )


def wide_option(func: F) -> F:
    """``--wide``: print tables and ids unelided, whatever the terminal's width."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[WIDE_META] = True

    return click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Print every column in full (no wrapping or eliding to the terminal width).",
    )(func)


def output_width(*, indent: int = 0) -> int | None:
    """The width text output should fit, or None for no limit.

    None with ``--wide`` and when stdout is not a terminal and ``$COLUMNS`` is unset (a pipe or
    a file gets whole lines); otherwise ``shutil.get_terminal_size`` (``$COLUMNS`` first) minus
    ``indent``.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(WIDE_META):
        return None
    if not os.environ.get("COLUMNS", "").strip().isdigit() and not _stdout_is_terminal():
        return None
    return max(20, shutil.get_terminal_size().columns - indent)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def elide(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by replacing its middle with ``…``.

    The end keeps more than the start: an id's end names the object (``…/Deployment/agent``).
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) * 2 // 5
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + text[len(text) - tail :]


def is_prose(text: str) -> bool:
    """Text that wraps at words without losing anything (a reason, an error)."""
    return " " in text.strip()


def fit_cell(text: str, width: int) -> list[str]:
    """One cell in at most ``width`` columns: prose is wrapped, an id is elided in the middle."""
    if len(text) <= width:
        return [text]
    if is_prose(text):
        lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
        # a word longer than the column (an id inside a message) is cut into pieces, not elided
        return [line[i : i + width] for line in lines or [""] for i in range(0, len(line), width)]
    return [elide(text, width)]


def column_widths(natural: Sequence[int], floors: Sequence[int], limit: int) -> list[int]:
    """Narrow the widest columns (never below their floor) until the row fits ``limit``.

    Returns the natural widths when they fit, else every column capped at the largest common
    cap that fits (columns narrower than the cap keep their width; floors are kept even when
    the row then does not fit).
    """
    overhead = len(SEPARATOR) * (len(natural) - 1)
    if sum(natural) + overhead <= limit:
        return list(natural)
    low, high = 0, max(natural)
    while low < high:  # the largest cap whose capped total fits
        cap = (low + high + 1) // 2
        total = sum(max(min(n, cap), f) for n, f in zip(natural, floors, strict=True))
        if total + overhead <= limit:
            low = cap
        else:
            high = cap - 1
    return [max(min(n, low), f) for n, f in zip(natural, floors, strict=True)]


def fit_widths(
    headers: Sequence[str], cells: Sequence[Sequence[str]], limit: int, keep: Collection[str] = ()
) -> list[int] | None:
    """Column widths for ``limit`` columns, or None when even the floors do not fit.

    Prose columns are narrowed first (down to PROSE_MIN; wrapping loses nothing), then every
    column (down to MIN_COLUMN; ids are elided), except the ``keep`` columns (what a user types
    back, e.g. a key id), which are never narrowed.
    """
    natural = [len(h) for h in headers]
    prose = [False] * len(headers)
    for row in cells:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell))
            prose[i] = prose[i] or is_prose(cell)
    overhead = len(SEPARATOR) * (len(headers) - 1)
    if sum(natural) + overhead <= limit:
        return natural
    whole = [h in keep for h in headers]
    # 1. prose columns narrowed (wrapped), ids whole
    pinned = [
        min(n, max(len(h), PROSE_MIN)) if p and not k else n
        for n, h, p, k in zip(natural, headers, prose, whole, strict=True)
    ]
    widths = column_widths(natural, pinned, limit)
    if sum(widths) + overhead <= limit:
        return widths
    # 2. prose columns at their floor, ids elided into the room left
    floors = [
        w if p or k else min(n, max(len(h), MIN_COLUMN))
        for n, w, h, p, k in zip(natural, pinned, headers, prose, whole, strict=True)
    ]
    widths = column_widths(pinned, floors, limit)
    if sum(widths) + overhead <= limit:
        return widths
    # 3. every column down to MIN_COLUMN, or no table at all
    floors = [
        n if k else min(n, max(len(h), MIN_COLUMN))
        for n, h, k in zip(natural, headers, whole, strict=True)
    ]
    if sum(floors) + overhead > limit:
        return None
    return column_widths(pinned, floors, limit)


def records(headers: Sequence[str], cells: Sequence[Sequence[str]], limit: int) -> str:
    """Each row as a block of ``HEADER: value`` lines, for a terminal too narrow for the table."""
    label = max(len(h) for h in headers) + 2
    room = max(MIN_COLUMN, limit - label)
    blocks = []
    for row in cells:
        lines = []
        for header, cell in zip(headers, row, strict=True):
            wrapped = textwrap.wrap(cell, room, break_on_hyphens=False) or [cell]
            lines.append(f"{header + ':':<{label}}{wrapped[0]}")
            lines += [" " * label + more for more in wrapped[1:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int | bool | None = True,
    keep: Collection[str] = (),
) -> str:
    """A left-aligned text table with a header row; empty cells print as ``-``.

    ``width``: True fits the terminal (:func:`output_width`), None or False never narrows, an
    int is the width to fit. ``keep``: headers of columns never narrowed. Where even narrowed
    columns cannot fit, each row becomes a block of ``HEADER: value`` lines.
    """
    limit = output_width() if width is True else (width or None)
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    if limit is not None:
        fitted = fit_widths(headers, cells, limit, keep)
        if fitted is None:
            return records(headers, cells, limit)
        widths = fitted
    lines = [SEPARATOR.join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        parts = [fit_cell(c, widths[i]) for i, c in enumerate(row)]
        for n in range(max(len(p) for p in parts) if parts else 0):
            line = SEPARATOR.join(
                (p[n] if n < len(p) else "").ljust(widths[i]) for i, p in enumerate(parts)
            )
            lines.append(line.rstrip())
    return "\n".join(lines)


def fit_line(text: str, *, indent: str = "", width: int | bool | None = True) -> list[str]:
    """One line of prose for a terminal: wrapped at words, continuation lines under ``indent``."""
    limit = output_width() if width is True else (width or None)
    if limit is None or len(text) <= limit:
        return [text]
    lead = len(text) - len(text.lstrip(" "))
    return textwrap.wrap(
        text.strip(),
        limit,
        initial_indent=" " * lead,
        subsequent_indent=" " * lead + indent,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [text]


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (what scripts parse)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))
