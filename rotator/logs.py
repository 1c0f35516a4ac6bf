"""Logging set-up: structlog with a readable console on a TTY, JSON lines otherwise.

All output goes to stderr, so stdout stays free for what scripts parse (`--output json`). A
redaction processor runs last before rendering, as defence in depth: any value registered with
:func:`rotator.secrets.register_secret` (key values, configured credentials) is masked wherever it
appears in an event, even inside an exception text or a nested structure.
"""

from __future__ import annotations

import logging
import sys
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


def configure_logging(
    *, level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog once for the process (CLI start, service start, tests)."""
    out = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
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
