"""A whole sandbox world for end-to-end tests: StackState, Vault and Kubernetes emulators, a
rotator configuration pointing at them, and helpers to run the real CLI and inspect every target.

The configuration's managed keys write to all three target types by default: key ``agent`` goes
to Secret ``suse-observability/agent-secrets`` (``STS_API_KEY``), Vault ``secret/stackstate/agent``
(``api_key``) and the YAML file ``<tmp>/etc/stackstate.yaml`` (``api_key``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.secrets import fingerprint
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.stackstate import StackStateEmulator
from rotator_sandbox.vault import VaultEmulator
from tests.plugins.cli import CliResult, CliRunner

NAMESPACE = "suse-observability"
RESTART_ANNOTATION = b"kubectl.kubernetes.io/restartedAt"
AGENT_YAML = """\
# StackState Agent configuration (hand-written; the rotator must keep these comments)
sts_url: https://observability.example.com/receiver/stsAgent
api_key: ""  # managed by the rotator
logs_enabled: true
"""


@dataclass
class World:
    """Emulators plus a configuration file and the CLI to run against them."""

    stackstate: StackStateEmulator
    vault: VaultEmulator
    kube: KubernetesEmulator
    kubeconfig: Path
    root: Path
    run_cli: CliRunner
    defaults: dict[str, Any] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    #: Further top-level sections (server, leader_election, alerts, history).
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        """Where the configuration is written."""
        return self.root / "rotator.yaml"

    def file_path(self, name: str) -> Path:
        """The file target of managed key ``name``."""
        return self.root / "etc" / f"{name}.yaml"

    def targets(self, name: str) -> list[dict[str, Any]]:
        """The three targets of a managed key, in the order Secret, Vault, file."""
        return [
            {
                "type": "kubernetes-secret",
                "namespace": NAMESPACE,
                "name": f"{name}-secrets",
                "key": "STS_API_KEY",
            },
            {"type": "vault-kv", "mount": "secret", "path": f"stackstate/{name}", "key": "api_key"},
            {
                "type": "file",
                "path": str(self.file_path(name)),
                "format": "yaml",
                "field": "api_key",
            },
        ]

    def add_key(self, name: str, kind: str = "service-token", **extra: Any) -> dict[str, Any]:
        """Add a managed key writing to all three targets; returns its config entry."""
        entry: dict[str, Any] = {"name": name, "kind": kind}
        if kind == "service-token":
            entry["roles"] = ["stackstate-ingest-telemetry"]
        entry["targets"] = self.targets(name)
        entry.update(extra)
        self.keys.append(entry)
        path = self.file_path(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(AGENT_YAML)
            path.chmod(0o644)
        return entry

    def add_key_with_workload(self, name: str, workload_kind: str = "Deployment") -> None:
        """A workload called ``name`` in NAMESPACE and a managed key ``name`` it consumes
        (restarted by the rotator)."""
        self.kube.add_workload(workload_kind, NAMESPACE, name)
        consumer = {
            "type": "kubernetes-workload",
            "namespace": NAMESPACE,
            "kind": workload_kind,
            "name": name,
        }
        self.add_key(name, consumers=[consumer])

    def restarts(self, plural: str, name: str, namespace: str = NAMESPACE) -> int:
        """PATCHes in the Kubernetes log that set the restart annotation on one workload and
        were applied (answered 2xx: a request dropped by a killed client restarted nothing)."""
        path = f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"
        return sum(
            1
            for r in self.kube.log
            if r.method == "PATCH"
            and r.path == path
            and RESTART_ANNOTATION in r.body
            and r.status is not None
            and r.status < 300
        )

    def write_config(self) -> Path:
        """Write the configuration for the current keys and defaults."""
        document = {
            "stackstate": {
                "url": self.stackstate.url,
                "service_token": self.stackstate.service_token,
                "allow_insecure_http": True,
                "timeout": "5s",
            },
            "kubernetes": {"kubeconfig": str(self.kubeconfig), "context": "sandbox"},
            "vault": {
                "url": self.vault.url,
                "auth": {"method": "token", "token": self.vault.root_token},
                "timeout": "5s",
            },
            "defaults": {"grace_period": "0s", "switch_timeout": "5m", **self.defaults},
            "keys": self.keys,
            **self.sections,
        }
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.config_path

    def rotator(self, *args: str) -> CliResult:
        """Run ``rotator --config <world config> ARGS`` in-process."""
        self.write_config()
        return self.run_cli("--log-format", "json", "--config", str(self.config_path), *args)

    def settle(self) -> None:
        """Run ``rotate`` until a run changes nothing (switch-over recorded, old keys revoked)."""
        for _ in range(4):
            result = self.rotator("rotate", "--output", "json")
            assert result.code == 0, result.out + result.err
            outcomes = {k["outcome"] for k in json.loads(result.out)["keys"]}
            if outcomes <= {"unchanged"}:
                return
        raise AssertionError(f"rotate did not settle: {result.out}")

    # -- what the targets hold -------------------------------------------------------------

    def secret_value(self, name: str) -> str | None:
        """The value in the Secret of managed key ``name``."""
        secret = self.kube.get("secrets", NAMESPACE, f"{name}-secrets")
        if secret is None or "STS_API_KEY" not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"]["STS_API_KEY"]).decode()

    def secret_annotations(self, name: str) -> dict[str, str]:
        """The annotations of that Secret."""
        secret = self.kube.get("secrets", NAMESPACE, f"{name}-secrets") or {}
        return dict(secret.get("metadata", {}).get("annotations") or {})

    def vault_value(self, name: str) -> str | None:
        """The value at the Vault path of managed key ``name``."""
        data = self.vault.read("secret", f"stackstate/{name}")
        if not data:
            return None
        inner = data.get("data", data)
        value = inner.get("api_key") if isinstance(inner, dict) else None
        return value if isinstance(value, str) else None

    def file_value(self, name: str) -> str | None:
        """The api_key field of the file of managed key ``name``."""
        path = self.file_path(name)
        if not path.exists():
            return None
        value = yaml.safe_load(path.read_text()).get("api_key")
        return value or None

    def values(self, name: str) -> list[str | None]:
        """What Secret, Vault and file hold, in that order."""
        return [self.secret_value(name), self.vault_value(name), self.file_value(name)]

    def managed_keys(self, kind: str, name: str) -> list[dict[str, Any]]:
        """StackState keys of ``kind`` whose name belongs to managed key ``name``."""
        return [
            k
            for k in self.stackstate.keys(kind)
            if k["name"].startswith(f"{name}-") and k["name"][len(name) + 1 :][:1].isdigit()
        ]

    def key_id_of(self, kind: str, value: str) -> int | None:
        """The id of the StackState key holding ``value``."""
        for key in self.stackstate.keys(kind):
            if self.stackstate.value_of(kind, key["id"]) == value:
                return int(key["id"])
        return None

    def mutating_requests(self) -> dict[str, list[str]]:
        """POST/PUT/PATCH/DELETE requests each emulator received, as ``METHOD path`` lines."""
        return {
            name: [f"{r.method} {r.path}" for r in emulator.mutating_requests()]
            for name, emulator in (
                ("stackstate", self.stackstate),
                ("vault", self.vault),
                ("kubernetes", self.kube),
            )
        }

    def clear_logs(self) -> None:
        """Forget every emulator's request log."""
        for emulator in (self.stackstate, self.vault, self.kube):
            emulator.clear_log()

    def secret_values(self) -> Sequence[str]:
        """Every value a leak check must look for: issued keys and configured credentials."""
        return [
            *self.stackstate.issued_values(),
            self.stackstate.service_token,
            self.vault.root_token,
        ]


def metadata_fingerprint(annotations: dict[str, str], data_key: str) -> set[str]:
    """Fingerprints recorded in the rotator's JSON annotation for ``data_key``."""
    record = json.loads(annotations.get("rotator.stackstate.io/keys", "{}"))
    return set(record.get(data_key, {}))


@pytest.fixture
def world(
    stackstate: StackStateEmulator,
    vault: VaultEmulator,
    kube: KubernetesEmulator,
    kubeconfig: Path,
    tmp_path: Path,
    run_cli: CliRunner,
) -> Iterator[World]:
    """A fresh world with no managed keys yet (add them with ``world.add_key``); the
    Kubernetes namespace :data:`NAMESPACE` exists, as it would in a real cluster."""
    kube.create_namespace(NAMESPACE)
    yield World(stackstate, vault, kube, kubeconfig, tmp_path, run_cli)


__all__ = ["World", "fingerprint", "metadata_fingerprint"]
