"""OpenBao's ``kubernetes`` auth method logs in a service account against the Kubernetes emulator.

The real ``bao server -dev`` is the suite's shared one (``openbao_server`` / ``openbao`` in
tests/plugins/openbao.py: one per worker, reset before the test; a missing ``bao`` skips with
the install hint, visibly).

OpenBao (2.x) refuses ``auth/kubernetes/config`` without a CA when it is not running in a pod: with
``disable_local_ca_jwt=false`` it reads ``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt``,
and with ``true`` it demands ``kubernetes_ca_cert``. So the emulator serves HTTPS with a generated
CA (and a bearer token, so the TokenReview OpenBao makes is authorised like on a cluster: OpenBao
sends the login JWT itself as the reviewer's bearer when no ``token_reviewer_jwt`` is set).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rotator_sandbox.kubernetes import KubernetesEmulator, generate_tls
from tests.plugins.openbao import OPENBAO_ROOT_TOKEN, OpenBaoProcess, OpenBaoVault, bao_binary

pytestmark = pytest.mark.slow

#: Seconds a CLI call may take to answer.
CLI_TIMEOUT = 30.0


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
            env={**self.environment, "BAO_ADDR": self.url, "BAO_TOKEN": OPENBAO_ROOT_TOKEN},
            check=False,
        )


@pytest.fixture
def bao(openbao_server: OpenBaoProcess, openbao: OpenBaoVault, tmp_path: Path) -> Bao:
    """The CLI against the session's OpenBao dev server, reset for this test (tests/plugins/
    openbao.py starts it once per worker and resets mounts, auth methods and policies)."""
    binary = bao_binary()
    assert binary is not None, "the openbao fixture skips when bao is missing"
    home = tmp_path / "bao-home"
    home.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    environment["HOME"] = str(home)
    return Bao(binary, openbao_server.url, environment)


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
