"""Tests for rotator.daemon.history and ``rotator history``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from rotator.daemon.history import History
from tests.plugins.world import World


class TestHistory:
    """The JSON-lines audit history."""

    def test_rotate_appends_one_line_per_key_without_values(self, world: World) -> None:
        """Each real run appends a line per managed key; no key value is ever written."""
        path = world.root / "state" / "history.jsonl"
        world.sections["history"] = {"path": str(path)}
        world.add_key("agent")
        world.add_key("ingest", "ingestion-api-key")
        assert world.rotator("rotate").code == 0
        assert world.rotator("rotate", "--dry-run").code == 0  # dry-runs are not recorded
        lines = path.read_text().splitlines()
        assert len(lines) == 2
        entries = [json.loads(line) for line in lines]
        assert {e["key"] for e in entries} == {"agent", "ingest"}
        assert all(e["source"] == "rotate" and e["outcome"] == "rotated" for e in entries)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        for value in world.secret_values():
            assert value not in text

    def test_history_command_filters_by_key(self, world: World) -> None:
        """``rotator history --key`` shows that key's entries; JSON is parseable."""
        path = world.root / "history.jsonl"
        world.sections["history"] = {"path": str(path)}
        world.add_key("agent")
        world.add_key("other")
        assert world.rotator("rotate").code == 0
        result = world.rotator("history", "--key", "agent", "--output", "json")
        assert result.code == 0, result.err
        entries = json.loads(result.out)["history"]
        assert [e["key"] for e in entries] == ["agent"]
        table = world.rotator("history")
        assert "DECISION" in table.out and "bootstrap" in table.out

    def test_history_command_without_a_path_is_a_usage_error(self, world: World) -> None:
        """Without history.path the command says so and exits 2."""
        world.add_key("agent")
        result = world.rotator("history")
        assert result.code == 2
        assert "history.path" in result.err

    def test_rotation_keeps_one_previous_file(self, tmp_path: Path) -> None:
        """Past max_bytes the file is moved to <path>.1 and entries read across both."""
        path = tmp_path / "h.jsonl"
        history = History(path, max_bytes=10)
        path.write_text('{"key": "a", "n": 1}\n')
        history._rotate_if_large()
        path.write_text('{"key": "a", "n": 2}\n')
        assert [e["n"] for e in history.entries()] == [1, 2]
        assert (tmp_path / "h.jsonl.1").exists()
