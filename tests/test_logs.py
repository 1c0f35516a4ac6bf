"""Tests for rotator.logs: rendering and the redaction processor."""

import io
import json

import pytest
import structlog

from rotator.logs import RedactSecrets, configure_logging
from rotator.secrets import MASK, Secret


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    yield
    structlog.reset_defaults()


class TestRedactSecrets:
    """The redaction processor."""

    def test_registered_values_are_masked_in_nested_structures(self) -> None:
        """A known secret inside strings, dicts and lists is masked."""
        Secret("nested-secret-value-42")
        event = RedactSecrets()(
            None,
            "info",
            {
                "event": "x nested-secret-value-42",
                "detail": {"inner": ["nested-secret-value-42"]},
            },
        )
        assert "nested-secret-value-42" not in json.dumps(event)

    def test_sensitive_keys_are_always_masked(self) -> None:
        """Keys named like credentials are masked even when the value is unknown."""
        event = RedactSecrets()(None, "info", {"event": "e", "token": "unknown", "api_key": "k"})
        assert event["token"] == MASK
        assert event["api_key"] == MASK

    def test_exceptions_are_rendered_redacted(self) -> None:
        """An exception object carrying a secret is rendered as masked text."""
        Secret("exception-secret-99")
        event = RedactSecrets()(
            None, "info", {"event": "e", "error": ValueError("bad exception-secret-99")}
        )
        assert event["error"] == f"ValueError: bad {MASK}"


class TestConfigureLogging:
    """End-to-end rendering through structlog."""

    def test_json_lines_mask_secrets_even_in_tracebacks(self) -> None:
        """JSON output carries no registered value, not even in a logged traceback."""
        stream = io.StringIO()
        configure_logging(level="debug", fmt="json", stream=stream)
        Secret("traceback-secret-777")
        log = structlog.get_logger()
        try:
            raise RuntimeError("failed with traceback-secret-777")
        except RuntimeError:
            log.exception("boom", value="traceback-secret-777")
        text = stream.getvalue()
        assert "traceback-secret-777" not in text
        line = json.loads(text.splitlines()[0])
        assert line["event"] == "boom"
        assert line["level"] == "error"

    def test_level_filters_events(self) -> None:
        """Events below the configured level are dropped."""
        stream = io.StringIO()
        configure_logging(level="warning", fmt="json", stream=stream)
        structlog.get_logger().info("hidden")
        structlog.get_logger().warning("shown")
        assert "hidden" not in stream.getvalue()
        assert "shown" in stream.getvalue()
