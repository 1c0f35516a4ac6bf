"""The run lock of ``rotator rotate`` (rotator.cli.lock): where it lives, who may own it, and
what a run does when it finds the lock unusable or held by a hung run."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.cli.lock import (
    LockHeld,
    LockUnavailable,
    default_lock_path,
    lock_directory,
    run_lock,
    shortest_interval,
)
from rotator.config import load_config
from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.cli import CliRunner, sandbox_config

NOBODY = 65534


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory standing in for /tmp (``tempfile.gettempdir()``), no XDG_RUNTIME_DIR."""
    base = tmp_path / "tmp"
    base.mkdir()
    base.chmod(0o1777)  # like /tmp: world-writable with the sticky bit
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    return base


@pytest.fixture
def configured(
    stackstate: StackStateEmulator,
    receiver: AlertReceiver,
    write_config: Callable[[dict[str, Any]], Path],
) -> Path:
    """A configuration with one managed key and a webhook alert to ``receiver``."""
    return write_config(
        sandbox_config(stackstate, alerts=[{"type": "webhook", "url": f"{receiver.url}/hook"}])
    )


def someone_elses(directory: Path) -> Path:
    """A directory owned by another user: chowned when we are root, else ``/``."""
    if os.geteuid() == 0:
        directory.mkdir(exist_ok=True)
        os.chown(directory, NOBODY, NOBODY)
        directory.chmod(0o700)
        return directory
    return Path("/")


class TestWhere:
    """The lock lives in a directory only its user can write."""

    def test_runtime_dir_is_used_when_set(self, tmp_path: Path) -> None:
        """$XDG_RUNTIME_DIR (private) holds one lock per configuration file."""
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        path = default_lock_path(tmp_path / "rotator.yaml", {"XDG_RUNTIME_DIR": str(runtime)})
        assert path.parent == runtime
        assert path.name.startswith("rotator-") and path.name.endswith(".lock")

    def test_without_runtime_dir_a_private_directory_is_made_in_tmp(
        self, private_tmp: Path
    ) -> None:
        """Never a predictable name directly in world-writable /tmp: <tmp>/rotator-<uid>/, 0700."""
        path = default_lock_path(Path("rotator.yaml"))
        directory = private_tmp / f"rotator-{os.geteuid()}"
        assert path.parent == directory
        info = directory.lstat()
        assert stat.S_ISDIR(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == os.geteuid()

    def test_directory_of_another_user_is_refused(self, private_tmp: Path) -> None:
        """A lock directory another user owns (planted in /tmp first) is refused."""
        planted = someone_elses(private_tmp / f"rotator-{os.geteuid()}")
        environ = {} if planted.name.startswith("rotator-") else {"XDG_RUNTIME_DIR": str(planted)}
        with pytest.raises(LockUnavailable, match="owned by uid"):
            lock_directory(environ)

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
    def test_group_or_world_writable_directory_is_refused(self, tmp_path: Path, mode: int) -> None:
        """A runtime directory others may write to is refused, naming its mode."""
        runtime = tmp_path / "run"
        runtime.mkdir()
        runtime.chmod(mode)
        with pytest.raises(LockUnavailable, match=f"mode {mode:04o}"):
            lock_directory({"XDG_RUNTIME_DIR": str(runtime)})

    def test_symlinked_directory_is_refused(self, private_tmp: Path, tmp_path: Path) -> None:
        """<tmp>/rotator-<uid> planted as a symlink (to a directory of ours) is refused."""
        real = tmp_path / "elsewhere"
        real.mkdir(mode=0o700)
        (private_tmp / f"rotator-{os.geteuid()}").symlink_to(real)
        with pytest.raises(LockUnavailable, match="symlink"):
            lock_directory({})

    def test_symlink_as_lock_file_is_refused(self, tmp_path: Path) -> None:
        """A lock file path that is a symlink is never followed."""
        victim = tmp_path / "victim"
        victim.write_text("keep me\n")
        link = tmp_path / "rotate.lock"
        link.symlink_to(victim)
        with pytest.raises(LockUnavailable, match="symlink"), run_lock(link):
            pass
        assert victim.read_text() == "keep me\n"


class TestHolder:
    """The holder's pid and start time are in the lock file while it holds it."""

    def test_record_is_written_and_emptied(self, tmp_path: Path) -> None:
        """While held the file names pid and start time; released, it is empty again."""
        path = tmp_path / "rotate.lock"
        started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        with run_lock(path, clock=lambda: started):
            record = json.loads(path.read_text())
            assert record["pid"] == os.getpid()
            assert record["started_at"] == "2026-01-02T03:04:05Z"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == ""

    def test_a_second_holder_is_told_who_holds_it(self, tmp_path: Path) -> None:
        """The refusal names the holder's pid and since when."""
        path = tmp_path / "rotate.lock"
        with run_lock(path), pytest.raises(LockHeld, match=f"pid {os.getpid()} on "):  # noqa: SIM117
            with run_lock(path):
                pass


class TestShortestInterval:
    """The schedule period a hung run is measured against."""

    def test_interval_and_cron_schedules(
        self, stackstate: StackStateEmulator, write_config: Callable[[dict[str, Any]], Path]
    ) -> None:
        """The shortest of every key's interval and cron gap."""
        data = sandbox_config(stackstate)
        second = dict(
            data["keys"][0],
            name="other",
            schedule={"cron": "*/20 * * * *"},
            targets=[{"type": "file", "path": "/tmp/rotator-unused-other"}],
        )
        data["keys"].append(second)
        data["defaults"] = {"schedule": {"interval": "1h"}}
        config = load_config(write_config(data))
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert shortest_interval(config, now) == timedelta(minutes=20)


class TestRotateWithTheLock:
    """What ``rotator rotate`` does with a lock it cannot create or finds held."""

    def test_unusable_lock_directory_exits_2_with_an_alert(
        self,
        run_cli: CliRunner,
        configured: Path,
        receiver: AlertReceiver,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A world-writable lock directory: a one-line error, exit 2, no traceback, an alert."""
        runtime = tmp_path / "run"
        runtime.mkdir()
        runtime.chmod(0o777)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        result = run_cli("--config", str(configured), "rotate")
        assert result.code == 2
        assert "Traceback" not in result.err
        assert f"error: run lock: XDG_RUNTIME_DIR {runtime} is writable by group or others" in (
            result.err
        )
        (alert,) = receiver.bodies()
        assert alert["event"] == "rotation_failed"
        assert (alert["step"], alert["category"]) == ("preflight", "fix-config")
        assert alert["error_type"] == "RunLockUnavailable"

    def test_hung_holder_is_alerted_and_named(
        self, run_cli: CliRunner, configured: Path, receiver: AlertReceiver, tmp_path: Path
    ) -> None:
        """A lock held for more than 3 x the shortest interval (1h): exit 1 naming the pid, and
        rotation_failed with step preflight, category human."""
        path = tmp_path / "rotate.lock"
        started = datetime.now(UTC) - timedelta(hours=3, minutes=5)
        with run_lock(path, clock=lambda: started):
            result = run_cli("--config", str(configured), "rotate", "--lock-file", str(path))
        assert result.code == 1
        assert f"held by pid {os.getpid()}" in result.err
        assert "may be hung" in result.err
        assert "Traceback" not in result.err
        (alert,) = receiver.bodies()
        assert alert["event"] == "rotation_failed"
        assert (alert["step"], alert["category"]) == ("preflight", "human")
        assert alert["error_type"] == "RunLockHung"
        assert str(os.getpid()) in alert["error"]

    def test_recently_taken_lock_is_no_alert(
        self,
        run_cli: CliRunner,
        configured: Path,
        receiver: AlertReceiver,
        tmp_path: Path,
        stackstate: StackStateEmulator,
    ) -> None:
        """A run overlapping a young one exits 1 naming it, without alerting anybody."""
        path = tmp_path / "rotate.lock"
        with run_lock(path):
            result = run_cli("--config", str(configured), "rotate", "--lock-file", str(path))
        assert result.code == 1
        assert f"pid {os.getpid()}" in result.err
        assert receiver.received == []
        assert stackstate.mutating_requests() == []
