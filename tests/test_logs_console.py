"""The console log renderer keeps lines readable in a terminal (issue 13, item 7)."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from rotator.logs import ConsoleRenderer, configure_logging
from rotator.secrets import Secret

LONG_TARGET = (
    "kubernetes-secret:sandbox/suse-observability/suse-observability-agent-rotated-api-key"
    "[STS_API_KEY]"
)
REASON = "rotation due: the key expires in 3 days, within rotate_before 14d of its expiry"


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    yield
    structlog.reset_defaults()


def test_pairs_wrap_at_the_width_and_nothing_is_lost() -> None:
    """Each line fits 80 columns; continuation lines are indented; every pair is there."""
    line = ConsoleRenderer(width=80)(
        None,
        "info",
        {
            "timestamp": "2026-01-01T12:00:00.123456Z",
            "level": "info",
            "event": "rotation.planned",
            "key": "agent-prod",
            "reason": REASON,
            "target": LONG_TARGET,
            "actions": ["create", "verify", "push"],
        },
    )
    lines = line.splitlines()
    assert lines[0].startswith("2026-01-01 12:00:00Z info    rotation.planned key=agent-prod")
    assert all(len(x) <= 80 for x in lines), lines
    assert all(x.startswith("    ") for x in lines[1:])
    joined = "".join(x.strip() for x in lines)
    assert REASON.replace(" ", "") in joined.replace(" ", "")
    assert LONG_TARGET in joined
    assert 'actions=["create","verify","push"]' in joined


def test_without_a_width_an_event_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Console format into a pipe without $COLUMNS: one line per event."""
    monkeypatch.delenv("COLUMNS", raising=False)
    line = ConsoleRenderer(width=None)(
        None, "warning", {"event": "e", "reason": REASON, "target": LONG_TARGET}
    )
    assert "\n" not in line
    assert line.startswith("warning e reason=")


def test_console_through_structlog_masks_secrets_and_keeps_tracebacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """configure_logging(fmt=console) wraps at $COLUMNS, redacts, and prints the traceback."""
    monkeypatch.setenv("COLUMNS", "60")
    stream = io.StringIO()
    configure_logging(level="info", fmt="console", stream=stream)
    Secret("console-secret-value-31")
    try:
        raise RuntimeError("failed with console-secret-value-31")
    except RuntimeError:
        structlog.get_logger().exception("boom", key="agent", reason=REASON)
    text = stream.getvalue()
    assert "console-secret-value-31" not in text
    assert "Traceback (most recent call last)" in text
    head = text.split("Traceback", 1)[0]
    assert all(len(x) <= 60 for x in head.splitlines())


def test_json_lines_are_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON logs stay one object per line whatever $COLUMNS says."""
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    structlog.get_logger().info("rotation.planned", reason=REASON, target=LONG_TARGET)
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["target"] == LONG_TARGET
