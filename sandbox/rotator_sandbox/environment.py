"""A ready-to-use sandbox: the emulators started together, a kubeconfig and a rotator config.

Used by ``rotator sandbox`` (foreground, for people and their kubectl/curl/hvac), by ``rotator
demo`` and by end-to-end tests that run the real ``rotator`` binary against local services.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import yaml

from rotator_sandbox._server import Emulator
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_charts import seed_agent_chart
from rotator_sandbox.stackstate import StackStateEmulator
from rotator_sandbox.vault import VaultEmulator

Service = Literal["stackstate", "vault", "kubernetes"]
SERVICES: tuple[Service, ...] = ("stackstate", "vault", "kubernetes")

#: The example managed key the written configuration holds.
EXAMPLE_KEY = "sandbox-agent"
EXAMPLE_NAMESPACE = "suse-observability"
#: How long a rollout takes in the sandbox: long enough that a switch-over visibly waits for
#: the restarted agents (tests build their own emulators, with instant rollouts by default).
SANDBOX_ROLLOUT_SECONDS = 3.0


@dataclass
class Sandbox:
    """The selected emulators; start() binds them (ports from ``port``, 0 = ephemeral)."""

    services: Sequence[Service] = SERVICES
    port: int = 0
    stackstate: StackStateEmulator | None = None
    vault: VaultEmulator | None = None
    kubernetes: KubernetesEmulator | None = None
    _started: list[Emulator] = field(default_factory=list)

    def start(self) -> Self:
        """Start each selected emulator on consecutive ports (or ephemeral ones)."""
        unknown = [s for s in self.services if s not in SERVICES]
        if unknown:
            raise ValueError(f"unknown sandbox service(s): {', '.join(unknown)}")
        for offset, service in enumerate(dict.fromkeys(self.services)):
            port = self.port + offset if self.port else 0
            if service == "stackstate":
                self.stackstate = StackStateEmulator(port=port)
                self._started.append(self.stackstate.start())
            elif service == "vault":
                self.vault = VaultEmulator(port=port)
                self._started.append(self.vault.start())
            else:
                self.kubernetes = KubernetesEmulator(
                    port=port, rollout_seconds=SANDBOX_ROLLOUT_SECONDS
                )
                self._started.append(self.kubernetes.start())
                self._seed_agent_workloads(self.kubernetes)
        return self

    @staticmethod
    def _seed_agent_workloads(kube: KubernetesEmulator) -> None:
        """The suse-observability-agent chart installed as release EXAMPLE_KEY with
        ``global.apiKey.fromSecret`` pointing at the rotator's own Secret
        ``<release>-rotated-api-key`` (the chart still renders ``<release>-secrets``)."""
        seed_agent_chart(
            kube,
            EXAMPLE_KEY,
            EXAMPLE_NAMESPACE,
            from_secret=f"{EXAMPLE_KEY}-rotated-api-key",
        )

    def stop(self) -> None:
        """Stop every started emulator."""
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def urls(self) -> dict[str, str]:
        """Service name → base URL of the running emulators."""
        found: dict[str, str] = {}
        if self.stackstate is not None:
            found["stackstate"] = f"{self.stackstate.url}/api"
        if self.vault is not None:
            found["vault"] = self.vault.url
        if self.kubernetes is not None:
            found["kubernetes"] = self.kubernetes.url
        return found

    def write_kubeconfig(self, path: Path) -> Path | None:
        """Write a kubeconfig for the Kubernetes emulator (context ``sandbox``), if running."""
        if self.kubernetes is None:
            return None
        return self.kubernetes.write_kubeconfig(path, context="sandbox")

    def config_document(self, kubeconfig: Path | None, state_dir: Path) -> dict[str, Any]:
        """A rotator configuration for the running emulators, with one example managed key."""
        if self.stackstate is None:
            raise ValueError("a rotator configuration needs the stackstate emulator")
        targets: list[dict[str, Any]] = []
        document: dict[str, Any] = {
            "stackstate": {
                "url": self.stackstate.url,
                "service_token": self.stackstate.service_token,
                "allow_insecure_http": True,
                "timeout": "5s",
            },
        }
        preset: dict[str, Any] | None = None
        if self.kubernetes is not None and kubeconfig is not None:
            document["kubernetes"] = {"kubeconfig": str(kubeconfig), "context": "sandbox"}
            # The agent chart's Secret <release>-secrets and its four workloads.
            preset = {
                "type": "suse-observability-agent",
                "release": EXAMPLE_KEY,
                "namespace": EXAMPLE_NAMESPACE,
            }
        if self.vault is not None:
            document["vault"] = {
                "url": self.vault.url,
                "auth": {"method": "token", "token": self.vault.root_token},
                "timeout": "5s",
            }
            targets.append(
                {
                    "type": "vault-kv",
                    "mount": "secret",
                    "path": f"stackstate/{EXAMPLE_KEY}",
                    "key": "api_key",
                }
            )
        targets.append(
            {
                "type": "file",
                "path": str(state_dir / "stackstate.yaml"),
                "format": "yaml",
                "field": "api_key",
            }
        )
        document["defaults"] = {
            "validity": "90d",
            "rotate_before": "14d",
            "grace_period": "0s",
            "switch_timeout": "5m",
            "schedule": {"interval": "1m"},
        }
        key: dict[str, Any] = {
            "name": EXAMPLE_KEY,
            "kind": "service-token",
            "roles": ["stackstate-ingest-telemetry"],
        }
        if preset is not None:
            key["preset"] = preset
        key["targets"] = targets
        document["keys"] = [key]
        return document

    def write_config(self, path: Path, kubeconfig: Path | None) -> Path:
        """Write the rotator configuration (mode 0600: it holds sandbox credentials)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = self.config_document(kubeconfig, path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("# Written by `rotator sandbox`: points at the local emulators.\n")
            yaml.safe_dump(document, handle, sort_keys=False)
        return path
