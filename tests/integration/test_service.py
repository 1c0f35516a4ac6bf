"""End-to-end: ``rotator run`` as real processes against the emulators.

The daemon is started with ``python -m rotator.cli run``; the tests watch it from outside
(``/metrics``, ``/healthz``, ``/readyz``, the emulators' state) and stop it with signals. Waits
poll for a state with a generous deadline; nothing asserts on how long anything took.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.plugins.world import NAMESPACE, RESTART_ANNOTATION, World

DEADLINE = 45.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


class Daemon:
    """One ``rotator run`` process and its HTTP endpoints."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rotator.cli",
                "--log-format",
                "json",
                "--config",
                str(config),
                "run",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def get(self, path: str) -> httpx.Response | None:
        """GET an endpoint, None while the daemon is not listening."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except httpx.TransportError:
            return None

    def role(self) -> str | None:
        """leader / standby from /readyz, None when not answering."""
        answer = self.get("/readyz")
        return None if answer is None else str(answer.json().get("role"))

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0 when absent)."""
        answer = self.get("/metrics")
        if answer is None:
            return 0.0
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in answer.text.splitlines():
            if line.startswith("#"):
                continue
            metric, _, value = line.rpartition(" ")
            if metric.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in metric for k, v in labels.items()) or not selector:
                return float(value)
        return 0.0

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=DEADLINE)
        self._log.close()
        return code

    def logs(self) -> str:
        """Everything the daemon printed."""
        return self.log_path.read_text()


@pytest.fixture
def start_daemon(world: World) -> Iterator[Callable[[], Daemon]]:
    """Start daemons on free ports; all are killed at teardown."""
    daemons: list[Daemon] = []

    def start() -> Daemon:
        port = free_port()
        world.sections["server"] = {"listen": f"127.0.0.1:{port}"}
        config = world.write_config()
        copy = world.root / f"rotator-{port}.yaml"
        copy.write_text(config.read_text())
        daemon = Daemon(copy, port, world.root / f"daemon-{port}.log")
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=DEADLINE)
        daemon._log.close()


def near_expiry(world: World) -> int:
    """Bootstrap ``agent`` with a 20-day key, then ask for rotation 30 days before expiry."""
    world.defaults = {"validity": "20d", "rotate_before": "14d"}
    world.add_key("agent")
    world.settle()
    (old,) = world.managed_keys("service-token", "agent")
    world.defaults = {
        "validity": "90d",
        "rotate_before": "30d",
        # Follow the switch-over closely so the revocation happens within the test.
        "schedule": {"interval": "1h", "recheck": "1s", "jitter": "0s"},
    }
    return int(old["id"])


class TestDaemon:
    """One daemon: rotates, exposes metrics and probes, stops cleanly."""

    def test_rotates_a_near_expiry_key_and_reports_it(
        self, world: World, start_daemon: Callable[[], Daemon]
    ) -> None:
        """The first run rotates the key; /metrics, /healthz, /readyz answer; SIGTERM exits 0."""
        old = near_expiry(world)
        daemon = start_daemon()
        wait_for(
            lambda: daemon.metric("rotator_rotations_total", key="agent", result="success") >= 1,
            "a successful rotation in /metrics",
        )
        wait_for(
            lambda: old not in [k["id"] for k in world.managed_keys("service-token", "agent")],
            "the old key to be revoked",
        )
        (new,) = world.managed_keys("service-token", "agent")
        value = world.stackstate.value_of("service-token", new["id"])
        assert world.values("agent") == [value, value, value]
        health = daemon.get("/healthz")
        assert health is not None and health.status_code == 200
        ready = wait_for(
            lambda: (r := daemon.get("/readyz")) is not None and r.status_code == 200 and r,
            "readiness",
        )
        assert ready.json()["role"] == "leader"
        assert daemon.metric("rotator_is_leader") == 1
        assert daemon.metric("rotator_key_rotation_runway_seconds", key="agent") > 0
        assert daemon.metric("rotator_key_expiry_timestamp_seconds", key="agent") > time.time()
        assert daemon.stop() == 0
        for secret in world.secret_values():
            assert secret not in daemon.logs()

    def test_sighup_with_a_bad_config_keeps_the_old_one(
        self, world: World, start_daemon: Callable[[], Daemon]
    ) -> None:
        """An invalid configuration on SIGHUP is rejected; the daemon keeps serving."""
        world.add_key("agent")
        daemon = start_daemon()
        wait_for(lambda: daemon.role() == "leader", "the daemon to be up")
        daemon.config.write_text("stackstate: {url: 12\nkeys: [")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config.reload_rejected" in daemon.logs(), "the reload to be rejected")
        health = daemon.get("/healthz")
        assert health is not None and health.status_code == 200
        assert daemon.process.poll() is None
        assert daemon.stop() == 0

    def test_an_edited_config_file_is_reloaded_without_a_signal(
        self, world: World, start_daemon: Callable[[], Daemon]
    ) -> None:
        """Writing the file is enough: a new key's series appear in /metrics, no SIGHUP."""
        world.add_key("agent")
        daemon = start_daemon()
        wait_for(lambda: daemon.role() == "leader", "the daemon to be up")

        def otel_series() -> bool:
            answer = daemon.get("/metrics")
            return answer is not None and 'key="otel"' in answer.text

        assert not otel_series()
        world.add_key("otel")
        daemon.config.write_text(world.write_config().read_text())  # same port: sections
        wait_for(lambda: "config.reloaded" in daemon.logs(), "the reload")
        wait_for(otel_series, "the new key's series")
        assert daemon.stop() == 0


class TestLeaderElection:
    """Two daemons: one acts; killing it hands over; the handover restarts nothing."""

    def test_only_the_leader_acts_and_handover_restarts_nothing(
        self, world: World, start_daemon: Callable[[], Daemon]
    ) -> None:
        """Exactly one leader; SIGKILL it; the other leads within the lease; no new restarts."""
        world.add_key_with_workload("agent")
        world.settle()
        world.sections["leader_election"] = {
            "enabled": True,
            "namespace": NAMESPACE,
            "lease_duration": "4s",
            "renew_deadline": "3s",
            "retry_period": "1s",
        }
        first = start_daemon()
        second = start_daemon()
        roles = wait_for(
            lambda: (
                (r := sorted([first.role() or "", second.role() or ""])) == ["leader", "standby"]
                and r
            ),
            "one leader and one standby",
        )
        assert roles == ["leader", "standby"]
        leader, standby = (first, second) if first.role() == "leader" else (second, first)
        world.kube.clear_log()
        world.stackstate.clear_log()
        leader.stop(signal.SIGKILL)
        wait_for(lambda: standby.role() == "leader", "the standby to take over")
        # Give the new leader its takeover run, then check it changed nothing.
        wait_for(
            lambda: standby.metric("rotator_last_success_timestamp_seconds", key="agent") > 0,
            "the new leader's first run",
        )
        restarts = [
            r for r in world.kube.log if r.method == "PATCH" and RESTART_ANNOTATION in r.body
        ]
        assert restarts == []
        assert [r for r in world.stackstate.log if r.method in ("POST", "DELETE")] == []
        assert standby.stop() == 0
