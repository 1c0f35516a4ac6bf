"""The emulators a benchmark size runs against, and the rotator configuration of N managed keys.

Every managed key is a service token with a Kubernetes Secret target; one key in ten also has a
Vault KV target, another one in ten a ``kubernetes-workload`` consumer whose Deployment (seeded
in the emulator) reads the Secret through ``envFrom``. The emulators run in this process on
127.0.0.1 with their request log off (``keep_log``: a bootstrap of thousands of keys would keep
every list response in memory); requests are counted in their :class:`RequestStats`, and one more
instance shared by the three counts how many were in flight at once across them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from rotator_sandbox._server import Emulator, RequestStats
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.stackstate import StackStateEmulator
from rotator_sandbox.vault import VaultEmulator

NAMESPACE = "bench"
#: A StackState key name the rotator gave a managed key: ``<managed>-<timestamp>[-<nonce>]``.
_MANAGED = re.compile(r"(?P<managed>agent-\d{5})-\d{8}T\d{6}Z(?:-[0-9a-f]{4})?$")
#: The APIs, in report order.
APIS = ("stackstate", "kubernetes", "vault")


def key_name(index: int) -> str:
    """The managed key name of key ``index``."""
    return f"agent-{index:05d}"


def has_vault(index: int) -> bool:
    """Whether key ``index`` also has a Vault KV target (one key in ten)."""
    return index % 10 == 1


def has_consumer(index: int) -> bool:
    """Whether key ``index`` has a kubernetes-workload consumer (one key in ten)."""
    return index % 10 == 2


@dataclass
class World:
    """Started emulators, a kubeconfig and a configuration of ``size`` keys under ``root``."""

    size: int
    root: Path
    stackstate: StackStateEmulator = field(init=False)
    vault: VaultEmulator = field(init=False)
    kube: KubernetesEmulator = field(init=False)
    #: Counts requests of all three emulators together (for the in-flight peak across them).
    combined: RequestStats = field(init=False, default_factory=RequestStats)
    config_path: Path = field(init=False)

    def start(self) -> World:
        """Start the emulators, seed the namespace and Deployments, write the configuration."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.stackstate = StackStateEmulator()
        self.vault = VaultEmulator()
        self.kube = KubernetesEmulator()
        for emulator in self.emulators().values():
            emulator.keep_log = False
            emulator.track(self.combined)
            emulator.start()
        self.kube.create_namespace(NAMESPACE)
        for index in range(self.size):
            if has_consumer(index):
                name = key_name(index)
                self.kube.add_workload(
                    "Deployment", NAMESPACE, name, replicas=1, env_from_secret=f"{name}-secrets"
                )
        self.config_path = self.write_config()
        return self

    def stop(self) -> None:
        """Stop the emulators."""
        for emulator in self.emulators().values():
            emulator.stop()

    def emulators(self) -> dict[str, Emulator]:
        """API name → emulator."""
        return {"stackstate": self.stackstate, "kubernetes": self.kube, "vault": self.vault}

    def reset_stats(self) -> None:
        """Start counting afresh."""
        for emulator in self.emulators().values():
            emulator.stats.reset()
        self.combined.reset()

    def document(self, *, server_port: int | None = None, interval: str = "1h") -> dict[str, Any]:
        """The configuration document (``server_port`` for the daemon's endpoints)."""
        kubeconfig = self.kube.write_kubeconfig(self.root / "kubeconfig", context="sandbox")
        keys: list[dict[str, Any]] = []
        for index in range(self.size):
            name = key_name(index)
            targets: list[dict[str, Any]] = [
                {
                    "type": "kubernetes-secret",
                    "namespace": NAMESPACE,
                    "name": f"{name}-secrets",
                    "key": "STS_API_KEY",
                }
            ]
            entry: dict[str, Any] = {
                "name": name,
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
            }
            if has_vault(index):
                targets.append(
                    {"type": "vault-kv", "mount": "secret", "path": f"bench/{name}", "key": "k"}
                )
            if has_consumer(index):
                entry["consumers"] = [
                    {
                        "type": "kubernetes-workload",
                        "namespace": NAMESPACE,
                        "kind": "Deployment",
                        "name": name,
                    }
                ]
            entry["targets"] = targets
            keys.append(entry)
        document: dict[str, Any] = {
            "stackstate": {
                "url": self.stackstate.url,
                "service_token": self.stackstate.service_token,
                "allow_insecure_http": True,
                "timeout": "30s",
            },
            "kubernetes": {"kubeconfig": str(kubeconfig), "context": "sandbox"},
            "vault": {
                "url": self.vault.url,
                "auth": {"method": "token", "token": self.vault.root_token},
                "timeout": "30s",
            },
            "defaults": {
                "validity": "90d",
                "rotate_before": "14d",
                "grace_period": "0s",
                "switch_timeout": "5m",
                "schedule": {"interval": interval, "jitter": "0s", "recheck": "1m"},
            },
            "keys": keys,
        }
        if server_port is not None:
            document["server"] = {"listen": f"127.0.0.1:{server_port}"}
        return document

    def write_config(
        self, name: str = "rotator.yaml", *, server_port: int | None = None, interval: str = "1h"
    ) -> Path:
        """Write a configuration (mode 0600: it holds the sandbox credentials)."""
        path = self.root / name
        path.write_text(
            yaml.safe_dump(
                self.document(server_port=server_port, interval=interval), sort_keys=False
            )
        )
        path.chmod(0o600)
        return path

    def make_due(self) -> int:
        """Move the expiry of one managed key in ten to one day from now (inside
        ``rotate_before``), so the next run rotates them; returns how many keys were moved.

        The keys are those whose last digit equals their tens digit (0, 11, 22, ... 99, 100,
        111, ...): among them as many with a Vault target or a consumer as in the whole set.
        """
        wanted = {key_name(i) for i in range(self.size) if i % 10 == (i // 10) % 10}
        soon = datetime.now(UTC) + timedelta(days=1)
        moved = 0
        for key in self.stackstate.keys("service-token"):
            match = _MANAGED.match(str(key["name"]))
            if match is not None and match["managed"] in wanted:
                self.stackstate.set_expiration("service-token", int(key["id"]), soon)
                moved += 1
        return moved
