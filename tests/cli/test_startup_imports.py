"""What a command imports before it works: only what the command and the configuration need.

Each case runs the CLI in a fresh interpreter (``python -c``): the ``rotator`` group's ``main`` with
``standalone_mode=False``, then the sorted names of ``sys.modules`` as the last line. No timing is
asserted; the libraries whose import costs tenths of a second of CPU (``kubernetes``, ``hvac``,
APScheduler; for ``--help`` also httpx, pydantic and structlog) must simply be absent unless the
configuration asks for them. The servers named in the configurations are unreachable ports on
127.0.0.1, so a command that does run fails fast after its imports.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.cli import LOG_LEVELS
from rotator.cli.keys import KEY_KIND_NAMES
from rotator.keytypes import KEY_KINDS
from rotator.logs import LEVELS
from rotator_sandbox.kubernetes import KubernetesEmulator

#: Libraries a command without Kubernetes, Vault or a daemon must never load.
HEAVY = ("kubernetes", "hvac", "apscheduler")
#: Libraries ``--help`` loads neither.
HELP_FREE = (*HEAVY, "httpx", "pydantic", "structlog")
#: Seconds one CLI run may take (imports plus StackState's bounded retries on a refused port).
RUN_TIMEOUT = 120

PROBE = """
import json, sys
from rotator.cli import cli
from rotator.cli import commands  # registers the commands, as main() does
try:
    cli.main(args=sys.argv[1:], prog_name="rotator", standalone_mode=False)
except BaseException as exc:  # the command's own outcome does not matter here
    print(f"outcome: {type(exc).__name__}", file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""


def imported(*args: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``rotator ARGS`` in a new process."""
    return {name.partition(".")[0] for name in loaded_modules(*args)}


def loaded_modules(*args: str) -> set[str]:
    """Every module name in ``sys.modules`` after running ``rotator ARGS`` in a new process."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (bound, never listening: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def write_config(
    tmp_path: Path, port: int, targets: str, *, kubernetes: bool = False, vault: bool = False
) -> Path:
    """A configuration of one ingestion key with ``targets`` (YAML list items)."""
    sections = [
        "stackstate:",
        f"  url: http://127.0.0.1:{port}",
        "  allow_insecure_http: true",
        "  api_token: dummy-token-for-import-tests",
    ]
    if kubernetes:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
            f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "contexts: [{name: ctx, context: {cluster: c, user: u}}]\n"
            "users: [{name: u, user: {token: dummy}}]\n",
            encoding="utf-8",
        )
        sections += ["kubernetes:", f"  kubeconfig: {kubeconfig}"]
    if vault:
        sections += [
            "vault:",
            f"  url: http://127.0.0.1:{port}",
            "  auth:",
            "    method: token",
            "    token: dummy-vault-token",
        ]
    sections += ["keys:", "  - name: agent", "    kind: ingestion-api-key", "    targets:", targets]
    path = tmp_path / "rotator.yaml"
    path.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return path


FILE_TARGET = "      - {type: file, path: %s}"
SECRET_TARGET = (
    "      - {type: kubernetes-secret, namespace: monitoring, name: agent-secrets, key: API_KEY}"
)
VAULT_TARGET = "      - {type: vault-kv, mount: secret, path: stackstate/agent, key: api_key}"


class TestStartUpImports:
    """Heavy libraries load only for the commands and configurations that need them."""

    def test_help_imports_no_client_library(self) -> None:
        """``rotator --help`` loads no Kubernetes, Vault, scheduler, HTTP, model or log library."""
        loaded = imported("--help")
        assert "rotator" in loaded
        assert loaded.isdisjoint(HELP_FREE), sorted(loaded & set(HELP_FREE))

    def test_check_config_of_a_file_only_config_imports_nothing_heavy(
        self, tmp_path: Path, closed_port: int
    ) -> None:
        """``check-config`` of a file-only configuration loads no Kubernetes, Vault or
        scheduler code."""
        config = write_config(tmp_path, closed_port, FILE_TARGET % (tmp_path / "agent.key"))
        loaded = imported("--config", str(config), "check-config")
        assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

    def test_check_config_of_a_kubernetes_config_imports_nothing_heavy(
        self, tmp_path: Path, closed_port: int
    ) -> None:
        """``check-config`` contacts nothing, so even a Kubernetes configuration loads no
        client."""
        config = write_config(tmp_path, closed_port, SECRET_TARGET, kubernetes=True)
        loaded = imported("--config", str(config), "check-config")
        assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

    def test_status_of_a_file_only_config_imports_nothing_heavy(
        self, tmp_path: Path, closed_port: int
    ) -> None:
        """A command that builds the runtime for file targets only loads no Kubernetes, Vault
        or scheduler code (it does load the StackState client)."""
        config = write_config(tmp_path, closed_port, FILE_TARGET % (tmp_path / "agent.key"))
        loaded = imported("--config", str(config), "status")
        assert "httpx" in loaded
        assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

    def test_doctor_of_a_file_only_config_imports_nothing_heavy(
        self, tmp_path: Path, closed_port: int
    ) -> None:
        """``doctor`` loads the Kubernetes and Vault checks' libraries only for a configuration
        that has a context or a vault-kv target."""
        config = write_config(tmp_path, closed_port, FILE_TARGET % (tmp_path / "agent.key"))
        loaded = imported("--config", str(config), "doctor")
        assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

    def test_status_of_a_kubernetes_config_imports_the_kubernetes_client(
        self, tmp_path: Path, closed_port: int
    ) -> None:
        """A Secret target brings the kubernetes package in (and still neither hvac nor
        APScheduler)."""
        config = write_config(tmp_path, closed_port, SECRET_TARGET, kubernetes=True)
        loaded = imported("--config", str(config), "status")
        assert "kubernetes" in loaded
        assert loaded.isdisjoint({"hvac", "apscheduler"})

    def test_status_reading_a_secret_imports_no_typed_kubernetes_api(
        self, tmp_path: Path, closed_port: int, kube: KubernetesEmulator
    ) -> None:
        """Kubernetes calls go by path through the ``ApiClient``: a ``status`` that reads a
        Secret loads no API class (``CoreV1Api`` & co., pydantic-validated, most of a second of
        CPU to import) and no model (``V1Secret``)."""
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "agent-secrets", "namespace": "monitoring"},
                "data": {"API_KEY": base64.b64encode(b"not-a-real-key").decode()},
            }
        )
        config = write_config(tmp_path, closed_port, SECRET_TARGET, kubernetes=True)
        kube.write_kubeconfig(tmp_path / "kubeconfig")  # the emulator instead of the closed port
        modules = loaded_modules("--config", str(config), "status")
        read = [
            entry
            for entry in kube.log
            if entry.method == "GET"
            and entry.path == "/api/v1/namespaces/monitoring/secrets/agent-secrets"
        ]
        assert [entry.status for entry in read] == [200]
        assert "kubernetes.client.api_client" in modules
        typed = sorted(
            name
            for name in modules
            if name.startswith(("kubernetes.client.api.", "kubernetes.client.models."))
        )
        assert typed == [], typed[:5]
        assert "kubernetes.client.api.core_v1_api" not in modules
        assert "kubernetes.client.models.v1_secret" not in modules

    def test_status_of_a_vault_config_imports_hvac(self, tmp_path: Path, closed_port: int) -> None:
        """A vault-kv target brings hvac in (and not the kubernetes package)."""
        config = write_config(tmp_path, closed_port, VAULT_TARGET, vault=True)
        loaded = imported("--config", str(config), "status")
        assert "hvac" in loaded
        assert "kubernetes" not in loaded


class TestSpelledOutChoices:
    """Choices the CLI spells out (so ``--help`` imports no library) agree with their source."""

    def test_key_kinds_agree_with_the_stackstate_client(self) -> None:
        """``--kind`` offers exactly the StackState client's key kinds, in its order."""
        assert KEY_KIND_NAMES == KEY_KINDS

    def test_log_levels_agree_with_the_logging_set_up(self) -> None:
        """``--log-level`` offers exactly the levels the logging set-up knows."""
        assert sorted(LOG_LEVELS) == sorted(LEVELS)
