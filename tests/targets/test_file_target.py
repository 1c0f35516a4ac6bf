"""Tests for the file target: formats, atomic writes, modes, symlinks, sidecar metadata."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rotator.config import load_config
from rotator.errors import TargetInvalid
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata
from rotator.targets.file import FileTarget, FileTargetGroup
from rotator.wiring import build_runtime
from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.cli import CliRunner, sandbox_config
from tests.plugins.config import minimal_config

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


class TestNotARegularFile:
    """A FIFO, a directory or a device is refused, never opened for a blocking read."""

    @pytest.mark.timeout(20)
    def test_fifo_is_refused_without_hanging(self, tmp_path: Path) -> None:
        """A named pipe nobody writes to: read and write refuse at once (it used to hang)."""
        path = tmp_path / "api_key"
        os.mkfifo(path)
        target = FileTarget(path)
        with pytest.raises(TargetInvalid, match="is a FIFO"):
            target.read()
        value = Secret("fifo-value-0123456789")
        with pytest.raises(TargetInvalid, match="not a regular file"):
            target.write(value, meta(value))
        assert stat.S_ISFIFO(path.lstat().st_mode)

    def test_directory_is_refused(self, tmp_path: Path) -> None:
        """A directory at the path is named as such and left alone."""
        path = tmp_path / "stackstate.yaml"
        path.mkdir()
        target = FileTarget(path, file_format="yaml", field="api_key")
        with pytest.raises(TargetInvalid, match="is a directory"):
            target.read()
        value = Secret("dir-value-0123456789")
        with pytest.raises(TargetInvalid, match="is a directory"):
            target.write(value, meta(value))
        assert path.is_dir()

    def test_character_device_is_refused(self) -> None:
        """/dev/null is a device, not a key file."""
        with pytest.raises(TargetInvalid, match="is a character device"):
            FileTarget(Path("/dev/null")).read()

    @pytest.mark.timeout(20)
    def test_fifo_as_sidecar_is_refused(self, tmp_path: Path) -> None:
        """The metadata sidecar is checked the same way."""
        path = tmp_path / "api_key"
        path.write_text("value-in-the-file-0123\n")
        os.mkfifo(tmp_path / "api_key.rotator.json")
        with pytest.raises(TargetInvalid, match="is a FIFO"):
            FileTarget(path).read()


class TestSameRealFile:
    """Targets of one configuration never write one data key of one real file."""

    def test_symlinked_directory_is_refused_at_read_and_write(self, tmp_path: Path) -> None:
        """Two targets, one through a symlinked directory: both refuse, naming the other."""
        real = tmp_path / "etc"
        real.mkdir()
        (tmp_path / "link").symlink_to(real)
        group = FileTargetGroup()
        first = FileTarget(
            real / "stackstate.yaml", file_format="yaml", field="api_key", group=group
        )
        second = FileTarget(
            tmp_path / "link" / "stackstate.yaml", file_format="yaml", field="api_key", group=group
        )
        with pytest.raises(TargetInvalid, match="is also the file of target"):
            first.read()
        value = Secret("same-file-value-0123")
        with pytest.raises(TargetInvalid, match=str(first.id).replace("[", r"\[")):
            second.write(value, meta(value))
        assert not (real / "stackstate.yaml").exists()

    def test_other_fields_of_one_file_are_allowed(self, tmp_path: Path) -> None:
        """Two YAML fields of one file do not collide (as in the configuration check)."""
        path = tmp_path / "stackstate.yaml"
        path.write_text(AGENT_YAML)
        group = FileTargetGroup()
        first = FileTarget(path, file_format="yaml", field="api_key", group=group)
        other = FileTarget(path, file_format="yaml", field="other_key", group=group)
        value = Secret("first-field-value-01")
        first.write(value, meta(value))
        assert other.read().value is None
        assert first.read().value == value

    def test_nested_fields_of_one_file_collide(self, tmp_path: Path) -> None:
        """``agent`` and ``agent.api_key`` overlap: refused."""
        path = tmp_path / "stackstate.yaml"
        group = FileTargetGroup()
        FileTarget(path, file_format="yaml", field="agent", group=group)
        nested = FileTarget(path, file_format="yaml", field="agent.api_key", group=group)
        with pytest.raises(TargetInvalid, match="same data key"):
            nested.read()


class TestWiredTogether:
    """build_runtime puts every file target of a configuration in one group."""

    def test_symlink_made_after_the_check_is_refused_at_runtime(
        self, tmp_path: Path, write_config: Callable[[dict[str, Any]], Path]
    ) -> None:
        """Distinct paths when the configuration was checked, one file by the time of the run:
        the targets refuse to read it (the check runs again where the files are)."""
        etc, other = tmp_path / "etc", tmp_path / "other"
        etc.mkdir()
        other.mkdir()
        data = minimal_config()
        data["keys"][0]["targets"] = [{"type": "file", "path": str(etc / "key")}]
        data["keys"].append(
            {
                **data["keys"][0],
                "name": "second",
                "targets": [{"type": "file", "path": str(other / "key")}],
            }
        )
        config = load_config(write_config(data))
        other.rmdir()
        other.symlink_to(etc)
        with build_runtime(config) as runtime:
            target = runtime.specs[1].targets[0]
            with pytest.raises(TargetInvalid, match="is also the file of target"):
                target.read()

    @pytest.mark.timeout(30)
    def test_rotate_with_a_fifo_target_fails_instead_of_hanging(
        self,
        tmp_path: Path,
        run_cli: CliRunner,
        stackstate: StackStateEmulator,
        write_config: Callable[[dict[str, Any]], Path],
    ) -> None:
        """``rotate`` with a FIFO as file target exits 1 naming it, and creates no key."""
        fifo = tmp_path / "api_key"
        os.mkfifo(fifo)
        data = sandbox_config(stackstate)
        data["keys"][0]["targets"] = [{"type": "file", "path": str(fifo)}]
        result = run_cli(
            "--config", str(write_config(data)), "rotate", "--lock-file", str(tmp_path / "l")
        )
        assert result.code == 1
        assert "FIFO" in result.out + result.err
        assert stackstate.keys("service-token") == []
