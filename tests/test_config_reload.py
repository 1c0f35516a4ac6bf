"""Reload on file change (rotator.daemon.reload) with real files: a mounted ConfigMap's atomic
symlink swap, edits, touches, a file missing for a moment, and the daemon reloading through it
(a valid new configuration is taken, an invalid one is rejected and alerted)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rotator.daemon.reload import ConfigWatcher, look
from rotator.daemon.service import Service
from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.world import World

DEADLINE = 30.0


class ConfigMapVolume:
    """A directory laid out as the kubelet mounts a ConfigMap, updated as the kubelet does:
    content in a timestamped directory, ``..data`` pointing at it, ``config.yaml`` a symlink to
    ``..data/config.yaml``; an update writes a new directory and renames a new ``..data``
    symlink over the old one (atomic), then removes the old directory."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._generation = 0
        self._current = self._write(text)
        (root / "..data").symlink_to(self._current.name)
        (root / "config.yaml").symlink_to("..data/config.yaml")

    @property
    def path(self) -> Path:
        """The path the daemon is given: the stable ``config.yaml`` symlink."""
        return self.root / "config.yaml"

    def _write(self, text: str) -> Path:
        self._generation += 1
        directory = self.root / f"..2026_12_02_03_00_{self._generation:02d}.{os.getpid()}"
        directory.mkdir()
        (directory / "config.yaml").write_text(text)
        return directory

    def update(self, text: str) -> None:
        """The kubelet's atomic update (AtomicWriter): new directory, symlink renamed over."""
        fresh = self._write(text)
        temporary = self.root / "..data_tmp"
        temporary.symlink_to(fresh.name)
        temporary.rename(self.root / "..data")
        (self._current / "config.yaml").unlink()
        self._current.rmdir()
        self._current = fresh


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until truthy; fail naming ``what``."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


class Calls:
    """Counts ``on_change`` calls (thread-safe)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


class TestConfigWatcher:
    """What counts as a change of the configuration file."""

    def test_a_configmap_symlink_swap_with_new_content_is_a_change(self, tmp_path: Path) -> None:
        """The stable path's inode never changes; the resolved file and content do."""
        volume = ConfigMapVolume(tmp_path / "config", "a: 1\n")
        calls = Calls()
        watcher = ConfigWatcher(volume.path, calls, interval=1)
        watcher.rebase()
        before = look(volume.path)
        assert before is not None and before.resolved.endswith(
            "01." + str(os.getpid()) + "/config.yaml"
        )
        volume.update("a: 2\n")
        assert watcher.poll()
        assert calls.count == 1
        assert not watcher.poll()  # seen once, not again
        assert calls.count == 1

    def test_same_content_touches_and_swaps_are_not_changes(self, tmp_path: Path) -> None:
        """A swap that keeps the content (another ConfigMap key changed) or a touch reloads
        nothing."""
        volume = ConfigMapVolume(tmp_path / "config", "a: 1\n")
        calls = Calls()
        watcher = ConfigWatcher(volume.path, calls, interval=1)
        watcher.rebase()
        volume.update("a: 1\n")
        assert not watcher.poll()
        os.utime(volume.path, ns=(1, 1))
        assert not watcher.poll()
        assert calls.count == 0

    def test_a_plain_file_edited_in_place_is_a_change(self, tmp_path: Path) -> None:
        """Not only ConfigMaps: an edit of a regular file is seen too."""
        path = tmp_path / "rotator.yaml"
        path.write_text("a: 1\n")
        calls = Calls()
        watcher = ConfigWatcher(path, calls, interval=1)
        watcher.rebase()
        path.write_text("a: 22\n")
        assert watcher.poll()
        assert calls.count == 1

    def test_a_file_missing_for_a_moment_is_not_a_change(self, tmp_path: Path) -> None:
        """Between two renames the file may be gone: wait for it, then compare contents."""
        path = tmp_path / "rotator.yaml"
        path.write_text("a: 1\n")
        calls = Calls()
        watcher = ConfigWatcher(path, calls, interval=1)
        watcher.rebase()
        path.unlink()
        assert not watcher.poll()
        path.write_text("a: 1\n")
        assert not watcher.poll()
        path.write_text("a: 3\n")
        assert watcher.poll()
        assert calls.count == 1

    def test_the_thread_sees_a_swap_and_stops(self, tmp_path: Path) -> None:
        """Started, it polls on its own; stopped, the thread ends."""
        volume = ConfigMapVolume(tmp_path / "config", "a: 1\n")
        calls = Calls()
        watcher = ConfigWatcher(volume.path, calls, interval=0.05)
        watcher.start()
        try:
            assert watcher.running
            volume.update("a: 2\n")
            wait_for(lambda: calls.count == 1, "the watcher to see the swap")
        finally:
            watcher.stop()
        assert not watcher.running

    def test_the_interval_must_be_positive(self, tmp_path: Path) -> None:
        """A zero interval would be a busy loop."""
        with pytest.raises(ValueError, match="positive"):
            ConfigWatcher(tmp_path / "x.yaml", Calls(), interval=0)


def config_text(world: World) -> str:
    """The world's current configuration as YAML text."""
    return world.write_config().read_text()


def series_keys(service: Service) -> set[str]:
    """Managed keys that have any series in the service's registry."""
    return {
        sample.labels["key"]
        for family in service.metrics.registry.collect()
        for sample in family.samples
        if "key" in sample.labels
    }


class TestDaemonReloadsOnFileChange:
    """The daemon follows its mounted ConfigMap without SIGHUP."""

    def test_a_swapped_configmap_is_loaded_and_an_invalid_one_keeps_the_old(
        self, world: World, receiver: AlertReceiver, tmp_path: Path
    ) -> None:
        """A new key appears after the swap; an invalid swap is rejected and alerted
        (config_invalid) while the daemon keeps running the previous configuration; stop()
        ends the watcher."""
        world.sections["server"] = {"listen": "127.0.0.1:0"}
        world.sections["alerts"] = [{"type": "webhook", "url": f"{receiver.url}/hook"}]
        world.add_key("agent")
        volume = ConfigMapVolume(tmp_path / "mounted", config_text(world))
        service = Service(volume.path, watch_interval=0.1)
        service.start()
        try:
            assert service.watcher is not None and service.watcher.running
            assert series_keys(service) == {"agent"}
            world.add_key("otel")
            volume.update(config_text(world))
            wait_for(lambda: series_keys(service) == {"agent", "otel"}, "the reload")
            assert service.schedule_job("otel") is not None

            volume.update("stackstate: {url: 12\nkeys: [")
            alert = wait_for(
                lambda: next(
                    (b for b in receiver.bodies() if b["event"] == "config_invalid"), None
                ),
                "the config_invalid alert",
            )
            assert alert["step"] == "config"
            assert "config.yaml" in alert["error"]
            assert [s.name for s in service.loaded.runtime.specs] == ["agent", "otel"]
            assert service.health()[0] == 200
            # Rejected once, not at every poll: the invalid content counts as seen.
            assert not service.watcher.poll()
        finally:
            service.stop(timeout=30)
        assert not service.watcher.running
