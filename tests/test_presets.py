"""Tests for rotator.presets: what each preset expands into."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.config import ManagedKey
from rotator.presets import effective_consumers, effective_targets


def key(preset: dict[str, Any], **extra: Any) -> ManagedKey:
    """A managed key using ``preset``."""
    return ManagedKey.model_validate(
        {"name": "agent", "kind": "service-token", "roles": ["r"], "preset": preset, **extra}
    )


def workloads(managed: ManagedKey) -> list[tuple[str, str | None]]:
    """(kind, name) of the workload consumers."""
    return [
        (c.kind, c.name) for c in effective_consumers(managed) if c.type == "kubernetes-workload"
    ]


class TestPresets:
    """Each preset names the Secret and workloads its chart or package uses."""

    def test_suse_observability_agent(self) -> None:
        """Secret <release>-secrets/STS_API_KEY and the four agent workloads, restarted."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        (target,) = effective_targets(managed)
        assert (target.type, target.namespace, target.name, target.key) == (
            "kubernetes-secret",
            "obs",
            "sts-secrets",
            "STS_API_KEY",
        )
        assert workloads(managed) == [
            ("DaemonSet", "sts-node-agent"),
            ("DaemonSet", "sts-logs-agent"),
            ("Deployment", "sts-cluster-agent"),
            ("Deployment", "sts-checks-agent"),
        ]
        assert {c.action for c in effective_consumers(managed)} == {"restart"}

    @pytest.mark.parametrize(
        ("release", "secret"),
        [
            ("sts", "sts-stackstate-k8s-agent"),
            ("my-stackstate-k8s-agent", "my-stackstate-k8s-agent"),
        ],
    )
    def test_stackstate_k8s_agent_uses_the_chart_fullname(self, release: str, secret: str) -> None:
        """The older chart's Secret is its fullname; the data key is sts-api-key."""
        managed = key({"type": "stackstate-k8s-agent", "release": release, "namespace": "obs"})
        (target,) = effective_targets(managed)
        assert (target.name, target.key) == (secret, "sts-api-key")

    def test_otel_collector_defaults(self) -> None:
        """Secret open-telemetry-collector/API_KEY and the collector Deployment."""
        managed = key({"type": "otel-collector", "namespace": "open-telemetry"})
        (target,) = effective_targets(managed)
        assert (target.name, target.key) == ("open-telemetry-collector", "API_KEY")
        assert workloads(managed) == [("Deployment", "opentelemetry-collector")]

    def test_linux_agent(self) -> None:
        """The agent YAML field api_key and systemctl restart stackstate-agent."""
        managed = key({"type": "linux-agent"})
        (target,) = effective_targets(managed)
        assert (target.type, str(target.path), target.format, target.field) == (
            "file",
            "/etc/stackstate-agent/stackstate.yaml",
            "yaml",
            "api_key",
        )
        (command,) = effective_consumers(managed)
        assert command.command == ["systemctl", "restart", "stackstate-agent"]

    def test_overrides_and_own_targets_are_kept(self) -> None:
        """secret_name, secret_key, workloads and action override; own targets follow."""
        managed = key(
            {
                "type": "suse-observability-agent",
                "release": "sts",
                "namespace": "obs",
                "secret_name": "custom",
                "secret_key": "KEY",
                "action": "wait",
                "workloads": [{"kind": "Deployment", "name": "only-one"}],
            },
            targets=[{"type": "file", "path": "/tmp/x"}],
        )
        assert [(t.type, getattr(t, "name", None)) for t in effective_targets(managed)] == [
            ("kubernetes-secret", "custom"),
            ("file", None),
        ]
        assert workloads(managed) == [("Deployment", "only-one")]
        assert {c.action for c in effective_consumers(managed)} == {"wait"}


class TestPresetCollisions:
    """A preset's Secret counts in the configuration's no-two-writers check."""

    def test_preset_secret_written_twice_is_a_config_error(self, tmp_path: Any) -> None:
        """A target writing the preset's Secret data key again is refused, naming both."""
        from rotator.config import load_config
        from rotator.errors import ConfigError

        path = tmp_path / "rotator.yaml"
        path.write_text(
            """
stackstate: {url: "https://sts.example.com", service_token: "t-123456"}
keys:
  - name: agent
    kind: service-token
    roles: [r]
    preset: {type: suse-observability-agent, release: sts, namespace: obs}
  - name: other
    kind: service-token
    roles: [r]
    targets:
      - {type: kubernetes-secret, namespace: obs, name: sts-secrets, key: STS_API_KEY}
"""
        )
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert "keys[1].targets[0]" in str(info.value)
        assert "keys[0].preset" in str(info.value)
