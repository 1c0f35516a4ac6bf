"""Tests for ``rotator demo``: the product at work against the in-process sandbox."""

from __future__ import annotations

from tests.plugins.cli import CliRunner


class TestDemo:
    """``rotator demo``."""

    def test_demo_runs_to_completion_without_printing_values(self, run_cli: CliRunner) -> None:
        """The demo bootstraps and rotates a key through all three targets and prints no value."""
        result = run_cli("--log-format", "json", "demo")
        assert result.code == 0, result.err
        assert "demo finished" in result.out
        assert result.out.count("outcome:  rotated") == 2
        assert "decision: bootstrap" in result.out
        assert "decision: rotate: forced" in result.out
        # Service-token values carry the svctok- prefix; ingestion values are 32 characters of
        # URL-safe base64: neither may appear in any output.
        assert "svctok-" not in result.out + result.err
        words = (result.out + result.err).replace('"', " ").split()
        assert not [
            w
            for w in words
            if len(w) == 32
            and "-" not in w[:1]
            and w.isascii()
            and all(c.isalnum() or c in "-_" for c in w)
        ]
