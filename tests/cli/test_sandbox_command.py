"""Tests for ``rotator sandbox``: the emulators served in the foreground for real tools."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import hvac
import pytest

from rotator.config import load_config

TIMEOUT = 20

SandboxStarter = Callable[..., dict[str, str]]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxStarter]:
    """Start ``rotator sandbox ARGS``; returns the printed name → value lines.

    At teardown the process gets SIGTERM and must exit 0 within the timeout.
    """
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> dict[str, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "rotator.cli", "sandbox", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        assert process.stdout is not None
        lines: dict[str, str] = {}
        for line in process.stdout:
            name, _, rest = line.partition(" ")
            lines[name] = rest.strip()
            # The last line names the StackState token (or the Vault one without StackState).
            if name == "sts" or ("stackstate" not in args and name == "vault"):
                break
        return lines

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
        assert process.stdout is not None
        process.stdout.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestSandboxCommand:
    """``rotator sandbox``."""

    def test_all_services_answer_real_clients_and_config_is_valid(
        self, sandbox: SandboxStarter, tmp_path: Path
    ) -> None:
        """httpx, hvac and kubectl reach the emulators; the written configuration loads."""
        lines = sandbox()
        info = httpx.get(
            f"{lines['stackstate']}/server/info",
            headers={"X-API-Key": "sandbox-service-token"},
            timeout=TIMEOUT,
        )
        assert info.status_code == 200
        vault = hvac.Client(url=lines["vault"], token="sandbox-root-token", timeout=TIMEOUT)
        try:
            vault.secrets.kv.v2.create_or_update_secret(path="probe", secret={"a": "b"})
        finally:
            vault.adapter.close()
        kubeconfig = tmp_path / "sandbox-out" / "kubeconfig"
        kubectl = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "create",
                "secret",
                "generic",
                "probe",
                "--from-literal=k=v",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert kubectl.returncode == 0, kubectl.stderr
        config = load_config(tmp_path / "sandbox-out" / "rotator.yaml")
        assert [k.name for k in config.keys] == ["sandbox-agent"]
        (key,) = config.keys
        assert key.preset is not None
        assert key.preset.type == "suse-observability-agent"
        assert [t.type for t in key.targets] == ["vault-kv", "file"]

    def test_single_service_on_a_chosen_port(self, sandbox: SandboxStarter) -> None:
        """``sandbox stackstate --port N`` serves StackState on that port."""
        port = free_port()
        lines = sandbox("stackstate", "--port", str(port))
        assert lines["stackstate"] == f"http://127.0.0.1:{port}/api"
        assert "vault" not in lines
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/security/tokens",
            headers={"X-API-Token": "sandbox-api-token"},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200
