"""Tests for the file target: formats, atomic writes, modes, symlinks, sidecar metadata."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rotator.errors import TargetInvalid
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata
from rotator.targets.file import FileTarget

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

AGENT_YAML = """\
# StackState agent configuration
sts_url: https://observability.example.com/receiver/stsAgent  # receiver
api_key: "old-value-0001"   # written by the rotator

logs_enabled: true
process_config:
  enabled: 'true'
"""


def meta(value: Secret, key_id: int = 7) -> KeyMetadata:
    """Metadata describing ``value``."""
    return KeyMetadata(
        key_id=key_id,
        key_name=f"agent-{key_id}",
        kind="service-token",
        fingerprint=value.fingerprint,
        expires_at=NOW,
        rotated_at=NOW,
    )


def mode_of(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


class TestYamlFormat:
    """The yaml format keeps the rest of the file intact."""

    def test_update_keeps_comments_order_and_quotes(self, tmp_path: Path) -> None:
        """Only the field changes; comments, order and other quoting survive."""
        path = tmp_path / "stackstate.yaml"
        path.write_text(AGENT_YAML)
        target = FileTarget(path, file_format="yaml", field="api_key")
        new = Secret("new-value-0002")
        target.write(new, meta(new))
        text = path.read_text()
        assert text == AGENT_YAML.replace("old-value-0001", "new-value-0002")
        assert target.read().value == new

    def test_dotted_field_creates_missing_maps(self, tmp_path: Path) -> None:
        """A dotted field that does not exist yet is created below the existing keys."""
        path = tmp_path / "c.yaml"
        path.write_text("# top\nexisting: 1\n")
        target = FileTarget(path, file_format="yaml", field="agent.auth.key")
        assert target.read().value is None
        target.write(Secret("nested-value-1"), meta(Secret("nested-value-1")))
        assert path.read_text().startswith("# top\nexisting: 1\nagent:\n")
        assert target.read().value == Secret("nested-value-1")

    def test_invalid_yaml_is_a_clear_error(self, tmp_path: Path) -> None:
        """Unparsable YAML raises TargetInvalid naming the line, and leaves the file alone."""
        path = tmp_path / "bad.yaml"
        path.write_text("a: [1, 2\nb: c\n")
        target = FileTarget(path, file_format="yaml", field="a")
        with pytest.raises(TargetInvalid, match="invalid YAML"):
            target.write(Secret("some-value-x"), meta(Secret("some-value-x")))
        assert path.read_text() == "a: [1, 2\nb: c\n"


class TestEnvFormat:
    """The env format replaces one variable line."""

    def test_other_lines_are_preserved_and_export_kept(self, tmp_path: Path) -> None:
        """Only the named variable changes; comments, others and ``export`` survive."""
        path = tmp_path / "agent.env"
        path.write_text("# env\nexport STS_API_KEY='old-value-1'\nOTHER=x\n")
        target = FileTarget(path, file_format="env", field="STS_API_KEY")
        assert target.read().value == Secret("old-value-1")
        target.write(Secret("new-value-2"), meta(Secret("new-value-2")))
        assert path.read_text() == "# env\nexport STS_API_KEY=new-value-2\nOTHER=x\n"

    def test_missing_variable_is_appended(self, tmp_path: Path) -> None:
        """A variable not in the file yet is added at the end."""
        path = tmp_path / "agent.env"
        path.write_text("OTHER=x\n")
        target = FileTarget(path, file_format="env", field="API_KEY")
        target.write(Secret("appended-1"), meta(Secret("appended-1")))
        assert path.read_text() == "OTHER=x\nAPI_KEY=appended-1\n"

    def test_values_with_special_characters_are_quoted_and_read_back(self, tmp_path: Path) -> None:
        """A value with spaces or quotes round-trips through double quotes."""
        path = tmp_path / "agent.env"
        target = FileTarget(path, file_format="env", field="API_KEY")
        odd = Secret('va lue"with\\quotes')
        target.write(odd, meta(odd))
        assert target.read().value == odd


class TestRawFormat:
    """The raw format holds just the value."""

    def test_missing_file_reads_as_empty_and_write_creates_it_0600(self, tmp_path: Path) -> None:
        """A missing file holds nothing; the first write creates it with mode 0600."""
        path = tmp_path / "token"
        target = FileTarget(path)
        assert target.read().value is None
        target.write(Secret("raw-value-1"), meta(Secret("raw-value-1")))
        assert path.read_text() == "raw-value-1"
        assert mode_of(path) == 0o600


class TestAtomicity:
    """Writes are atomic, keep ownership and never loosen modes."""

    def test_looser_original_mode_is_tightened_to_0600(self, tmp_path: Path) -> None:
        """A world-readable file becomes 0600."""
        path = tmp_path / "stackstate.yaml"
        path.write_text(AGENT_YAML)
        path.chmod(0o644)
        FileTarget(path, file_format="yaml", field="api_key").write(
            Secret("new-value-3"), meta(Secret("new-value-3"))
        )
        assert mode_of(path) == 0o600

    def test_stricter_original_mode_is_kept(self, tmp_path: Path) -> None:
        """A 0400 file stays 0400."""
        path = tmp_path / "token"
        path.write_text("old-value-4")
        path.chmod(0o400)
        FileTarget(path).write(Secret("new-value-4"), meta(Secret("new-value-4")))
        assert mode_of(path) == 0o400

    def test_owner_and_group_are_preserved(self, tmp_path: Path) -> None:
        """The replacement file keeps the original's uid and gid."""
        path = tmp_path / "token"
        path.write_text("old-value-5")
        if os.geteuid() == 0:
            os.chown(path, 1234, 2345)
        before = path.stat()
        FileTarget(path).write(Secret("new-value-5"), meta(Secret("new-value-5")))
        after = path.stat()
        assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)

    def test_no_temporary_files_are_left_behind(self, tmp_path: Path) -> None:
        """Only the file and its sidecar remain after a write."""
        path = tmp_path / "token"
        FileTarget(path).write(Secret("new-value-6"), meta(Secret("new-value-6")))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["token", "token.rotator.json"]


class TestSymlinks:
    """Symlinks are followed only inside the target directory."""

    def test_symlink_inside_directory_is_followed_and_kept(self, tmp_path: Path) -> None:
        """Writing through an in-directory symlink updates the real file, the link stays."""
        real = tmp_path / "real.yaml"
        real.write_text("api_key: a-old-value\n")
        link = tmp_path / "stackstate.yaml"
        link.symlink_to(real.name)
        FileTarget(link, file_format="yaml", field="api_key").write(
            Secret("b-new-value"), meta(Secret("b-new-value"))
        )
        assert link.is_symlink()
        assert real.read_text() == "api_key: b-new-value\n"

    def test_symlink_out_of_directory_is_refused(self, tmp_path: Path) -> None:
        """A symlink pointing elsewhere is refused without touching the other file."""
        outside = tmp_path / "outside"
        outside.mkdir()
        victim = outside / "passwd"
        victim.write_text("root:x:0:0\n")
        inside = tmp_path / "conf"
        inside.mkdir()
        (inside / "token").symlink_to(victim)
        with pytest.raises(TargetInvalid, match="symlink"):
            FileTarget(inside / "token").write(Secret("evil-value-1"), meta(Secret("evil-value-1")))
        assert victim.read_text() == "root:x:0:0\n"


class TestMetadata:
    """The sidecar describes the value held, and survives a crash between its two writes."""

    def test_metadata_round_trips_and_never_holds_the_value(self, tmp_path: Path) -> None:
        """read() returns the metadata written; the sidecar has no value, mode 0600."""
        path = tmp_path / "token"
        value = Secret("sidecar-value-1")
        target = FileTarget(path)
        target.write(value, meta(value, key_id=42))
        state = target.read()
        assert state.managed_metadata is not None
        assert state.managed_metadata.key_id == 42
        sidecar = tmp_path / "token.rotator.json"
        assert "sidecar-value-1" not in sidecar.read_text()
        assert mode_of(sidecar) == 0o600

    def test_sidecar_written_first_still_describes_the_old_value(self, tmp_path: Path) -> None:
        """If only the sidecar was written (crash), the old value keeps its own metadata."""
        path = tmp_path / "token"
        old, new = Secret("crash-old-value"), Secret("crash-new-value")
        target = FileTarget(path)
        target.write(old, meta(old, key_id=1))
        # Simulate the crash: the sidecar gets the new entry, the value file is untouched.
        sidecar = tmp_path / "token.rotator.json"
        data = json.loads(sidecar.read_text())
        data["_value"][new.fingerprint] = meta(new, key_id=2).to_dict()
        sidecar.write_text(json.dumps(data))
        state = target.read()
        assert state.value == old
        assert state.managed_metadata is not None
        assert state.managed_metadata.key_id == 1

    def test_hand_edited_value_has_no_metadata(self, tmp_path: Path) -> None:
        """A value the rotator did not write is reported without metadata (adopted)."""
        path = tmp_path / "token"
        target = FileTarget(path)
        target.write(Secret("ours-value-1"), meta(Secret("ours-value-1")))
        path.write_text("hand-made-value")
        assert target.read().managed_metadata is None
