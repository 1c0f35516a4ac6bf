"""Terminal output fits the terminal (issue 13, item 7): tables, plans, status and history adapt
to ``$COLUMNS``; ``--wide`` prints everything; JSON output does not depend on the width."""

from __future__ import annotations

import json
import re

import pytest

from rotator.cli.output import column_widths, elide, fit_cell, fit_line, table
from tests.plugins.world import World

LONG_ID = "kubernetes-workload:sandbox/suse-observability/DaemonSet/suse-observability-agent-node"


def mask_new_key(text: str) -> str:
    """The document with what differs between two plans of one moment masked: the new key's
    name (``<name>-<UTC timestamp>-<4 hex>``) and its expiry (to the minute)."""
    text = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{4}", "<new key>", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", "<expiry>", text)


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


class TestTable:
    """The table renderer on its own, at fixed widths."""

    def test_a_table_that_fits_is_unchanged(self) -> None:
        """Natural widths when the table fits: columns padded, rows on one line each."""
        text = table(["A", "BB"], [["x", "yy"], [None, "z"]], width=80)
        assert text.splitlines() == ["A | BB", "x | yy", "- | z"]

    def test_ids_are_elided_in_the_middle_and_prose_is_wrapped(self) -> None:
        """An id keeps both ends around '…'; a reason wraps onto continuation lines."""
        reason = "rotation due: the key expires in 3 days, within rotate_before 14d of its expiry"
        text = table(["ACTION", "TARGET", "DETAIL"], [["restart", LONG_ID, reason]], width=80)
        assert widest(text) <= 80
        assert "…" in text
        assert "kubernetes-w" in text and "agent-node" in text
        assert " ".join(text.split()).count("rotate_before") == 1  # wrapped, not cut
        assert len(text.splitlines()) > 2

    def test_too_narrow_for_a_table_gives_one_block_per_row(self) -> None:
        """Where narrowed columns still cannot fit, rows become ``HEADER: value`` blocks."""
        headers = ["KEY", "KIND", "CURRENT", "EXPIRES", "DAYS LEFT", "TARGETS AGREE", "NEXT"]
        row = ["agent-prod", "service-token", "agent-prod-20260101T000000Z-3f9a", "2026-04-01"]
        text = table(headers, [[*row, "90", "yes", "ok"], [*row, "1", "no", "rotate"]], width=60)
        assert widest(text) <= 60
        assert "CURRENT:       agent-prod-20260101T000000Z-3f9a" in text.splitlines()
        assert text.count("\n\n") == 1

    def test_width_none_prints_everything(self) -> None:
        """``width=None`` (``--wide``) never narrows."""
        text = table(["TARGET"], [[LONG_ID]], width=None)
        assert LONG_ID in text

    def test_short_columns_keep_their_width(self) -> None:
        """Only the widest columns are narrowed; short ones and headers stay whole."""
        assert column_widths([4, 60, 50], [4, 10, 10], 60) == [4, 25, 25]
        assert column_widths([4, 6], [4, 6], 80) == [4, 6]

    def test_elide_and_fit(self) -> None:
        """Eliding keeps the requested width exactly."""
        assert elide("abcdefghij", 5) == "a…hij"  # the end (the name) keeps more
        assert len(elide(LONG_ID, 21)) == 21
        assert fit_cell("short", 10) == ["short"]
        assert fit_line("  decision: " + "word " * 30, indent="    ", width=40)[1].startswith(
            "      "
        )


class TestCommands:
    """The real CLI against the emulators with a fixed ``$COLUMNS``."""

    @pytest.fixture
    def world80(self, world: World, monkeypatch: pytest.MonkeyPatch) -> World:
        monkeypatch.setenv("COLUMNS", "80")
        world.add_key_with_workload("agent-with-a-rather-long-managed-key-name")
        return world

    def test_plan_fits_80_columns_and_wide_prints_ids_in_full(self, world80: World) -> None:
        """``rotate --dry-run`` fits 80 columns; ``--wide`` shows the ids unelided."""
        fitted = world80.rotator("rotate", "--dry-run")
        assert fitted.code == 0, fitted.err
        assert widest(fitted.out) <= 80, fitted.out
        wide = world80.rotator("rotate", "--dry-run", "--wide")
        assert widest(wide.out) > 80
        assert "kubernetes-workload:sandbox/" in wide.out
        assert "kubernetes-secret:sandbox/" in wide.out  # one cluster, one context name

    def test_status_and_history_fit_80_columns(self, world80: World) -> None:
        """``status`` and ``history`` tables fit; ``history --key`` is repeatable."""
        world80.sections["history"] = {"path": str(world80.config_path.parent / "history.jsonl")}
        world80.settle()
        status = world80.rotator("status")
        assert status.code == 0, status.err
        assert widest(status.out) <= 80, status.out
        history = world80.rotator(
            "history", "--key", "agent-with-a-rather-long-managed-key-name", "--key", "other"
        )
        assert history.code == 0, history.err
        assert widest(history.out) <= 80, history.out
        assert "DECISION" in history.out and "rotate" in history.out

    def test_json_output_does_not_depend_on_the_width(
        self, world80: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``-o json`` is byte-for-byte the same at 80 and at 400 columns, with or without
        ``--wide`` — but for the planned key's name and expiry, which each run draws anew
        (timestamp and random suffix)."""
        narrow = world80.rotator("rotate", "--dry-run", "-o", "json")
        monkeypatch.setenv("COLUMNS", "400")
        wide = world80.rotator("rotate", "--dry-run", "-o", "json", "--wide")
        assert mask_new_key(narrow.out) == mask_new_key(wide.out)
        assert json.loads(narrow.out)["dry_run"] is True
        assert "\n  " in narrow.out  # indented JSON, not a fitted table


def test_doctor_text_wraps_at_a_narrower_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """doctor's report wraps at $COLUMNS when the terminal is narrower than its 100 columns."""
    from rotator.cli.doctor import render_text
    from rotator.doctor import CheckResult, KeyReport

    report = KeyReport(
        "agent", (CheckResult("kubernetes-rbac", "secrets/agent", False, "refused " * 20, "grant"),)
    )
    monkeypatch.setenv("COLUMNS", "60")
    assert widest(render_text([report])) <= 60
    monkeypatch.setenv("COLUMNS", "300")
    assert 60 < widest(render_text([report])) <= 100
