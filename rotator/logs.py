"""Logging set-up: structlog with a readable console on a TTY, JSON lines otherwise.

The console renderer (:class:`ConsoleRenderer`, ours: small and quick to import) prints
``time level event`` and then the event's ``key=value`` pairs, wrapped onto indented
continuation lines at the terminal's width, so a line stays readable in a terminal; a traceback
follows verbatim. JSON lines are one object per event, never wrapped.

All output goes to stderr, so stdout stays free for what scripts parse (`--output json`). A
redaction processor runs last before rendering, as defence in depth: any value registered with
:func:`rotator.secrets.register_secret` (key values, configured credentials) is masked wherever it
appears in an event, even inside an exception text or a nested structure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from rotator.secrets import MASK, redact

LogFormat = Literal["console", "json", "auto"]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

#: Event keys whose values are always masked, whatever they hold.
SENSITIVE_KEYS = frozenset(
    {"value", "token", "api_key", "apikey", "secret", "password", "authorization", "x-api-key"}
)


class RedactSecrets:
    """Mask registered secret values and sensitive keys anywhere in an event dict."""

    def __init__(self, sensitive_keys: frozenset[str] = SENSITIVE_KEYS) -> None:
        self._sensitive = sensitive_keys

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key.lower() in self._sensitive and event_dict[key] is not None:
                event_dict[key] = MASK
            else:
                event_dict[key] = self._scrub(event_dict[key])
        return event_dict

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {
                k: (MASK if str(k).lower() in self._sensitive else self._scrub(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        if isinstance(value, BaseException):
            return redact(f"{type(value).__name__}: {value}")
        return value


_LEVEL_COLORS: Mapping[str, str] = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31;1m",
    "critical": "\x1b[31;1m",
}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"
#: Continuation lines of an event are indented by this.
CONTINUATION = "    "


class ConsoleRenderer:
    """``2026-01-01 12:00:00Z info    event  key=value ...``, wrapped to a width.

    ``width``: an int, or None to ask the terminal at each event (``$COLUMNS`` first; no
    wrapping when ``stream`` is not a terminal and ``$COLUMNS`` is unset).
    """

    def __init__(
        self, *, colors: bool = False, width: int | None = None, stream: TextIO | None = None
    ) -> None:
        self._colors = colors
        self._width = width
        self._stream = stream

    def _limit(self) -> int | None:
        if self._width is not None:
            return self._width
        columns = os.environ.get("COLUMNS", "").strip()
        if columns.isdigit():
            return max(40, int(columns))
        stream = self._stream
        if stream is not None and hasattr(stream, "isatty") and stream.isatty():
            return max(40, shutil.get_terminal_size().columns)
        return None

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        event = dict(event_dict)
        stamp = str(event.pop("timestamp", "") or "")
        if len(stamp) >= 19 and stamp[10] == "T":  # ISO: date and time to the second, UTC
            stamp = f"{stamp[:10]} {stamp[11:19]}Z"
        level = str(event.pop("level", method_name))
        message = str(event.pop("event", ""))
        trailer = [str(event.pop(k)) for k in ("stack", "exception") if event.get(k)]
        pairs = [f"{k}={self._value(v)}" for k, v in event.items()]
        lead = f"{stamp} {level:<7} " if stamp else f"{level:<7} "
        limit = self._limit()
        lines = self._wrap(lead, message, pairs, limit)
        if self._colors:
            color = _LEVEL_COLORS.get(level, "")
            first = lines[0]
            lines[0] = (
                first.replace(level, f"{color}{level}{_RESET}", 1).replace(
                    message, f"{_BOLD}{message}{_RESET}", 1
                )
                if message
                else first
            )
        return "\n".join([*lines, *trailer])

    @staticmethod
    def _value(value: Any) -> str:
        if isinstance(value, str):
            return json.dumps(value) if (not value or any(c in value for c in ' ="')) else value
        if isinstance(value, Mapping | list | tuple):
            return json.dumps(value, default=str, separators=(",", ":"))
        return str(value)

    @staticmethod
    def _wrap(lead: str, message: str, pairs: list[str], limit: int | None) -> list[str]:
        if limit is None:
            return [" ".join([lead + message, *pairs]).rstrip()]
        lines: list[str] = []
        current = (lead + message).rstrip()
        for pair in pairs:
            if len(current) + 1 + len(pair) <= limit:
                current = f"{current} {pair}"
                continue
            lines.append(current)
            if len(CONTINUATION) + len(pair) <= limit:
                current = CONTINUATION + pair
                continue
            # A long value (an error message): wrapped under its key, nothing cut.
            chunks = textwrap.wrap(
                pair,
                limit,
                initial_indent=CONTINUATION,
                subsequent_indent=CONTINUATION * 2,
                break_on_hyphens=False,
            )
            lines += chunks[:-1]
            current = chunks[-1]
        lines.append(current)
        return lines


def configure_logging(
    *, level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog once for the process (CLI start, service start, tests)."""
    out = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any
    if use_console:
        renderer = ConsoleRenderer(colors=out.isatty(), stream=out)
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Exceptions become text before redaction, so the redactor also sees tracebacks.
        structlog.processors.format_exc_info,
        RedactSecrets(),
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level.lower(), 20)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
