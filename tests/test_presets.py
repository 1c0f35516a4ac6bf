"""Tests for rotator.config.presets: what each preset expands into, read from the managed key."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.config import ManagedKey


def key(preset: dict[str, Any], **extra: Any) -> ManagedKey:
    """A managed key using ``preset``."""
    return ManagedKey.model_validate(
        {"name": "agent", "kind": "service-token", "roles": ["r"], "preset": preset, **extra}
    )


def workloads(managed: ManagedKey) -> list[tuple[str, str | None]]:
    """(kind, name) of the workload consumers."""
    return [
        (c.kind, c.name) for c in managed.effective_consumers if c.type == "kubernetes-workload"
    ]


class TestPresets:
    """Each preset names the Secret it writes and discovers the workloads that read it."""

    def test_suse_observability_agent(self) -> None:
        """Its own Secret <release>-rotated-api-key/STS_API_KEY, never the chart's Secret."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        (target,) = managed.effective_targets
        assert (target.type, target.namespace, target.name, target.key) == (
            "kubernetes-secret",
            "obs",
            "sts-rotated-api-key",
            "STS_API_KEY",
        )

    def test_agent_presets_discover_readers_and_watch_the_chart_secret(self) -> None:
        """Readers are discovered; workloads still on the chart's Secret block the key."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        (consumer,) = managed.effective_consumers
        assert consumer.type == "kubernetes-workload"
        assert consumer.discover is True
        assert consumer.legacy_secrets == ["sts-secrets"]
        assert consumer.action == "restart"

    def test_agent_preset_values_point_the_chart_at_the_rotators_secret(self) -> None:
        """global.apiKey.fromSecret names the Secret the preset writes."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        assert managed.helm_values == (("global.apiKey.fromSecret", "sts-rotated-api-key"),)
        hint = managed.helm_hint
        assert hint is not None
        assert "--set global.apiKey.fromSecret=sts-rotated-api-key" in hint

    def test_agent_preset_adopts_from_the_chart_secret(self) -> None:
        """The chart's own Secret is where the value in use is adopted from."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        source = managed.adopt_source
        assert source is not None
        assert (source.namespace, source.name, source.key) == ("obs", "sts-secrets", "STS_API_KEY")

    @pytest.mark.parametrize(
        ("release", "chart_secret"),
        [
            ("sts", "sts-stackstate-k8s-agent"),
            ("my-stackstate-k8s-agent", "my-stackstate-k8s-agent"),
        ],
    )
    def test_stackstate_k8s_agent_uses_its_own_secret_and_manage_own_secrets(
        self, release: str, chart_secret: str
    ) -> None:
        """The older chart reads our Secret through manageOwnSecrets + customSecretName; its
        own Secret (the chart fullname) is the legacy one."""
        managed = key({"type": "stackstate-k8s-agent", "release": release, "namespace": "obs"})
        (target,) = managed.effective_targets
        assert (target.name, target.key) == (f"{release}-rotated-api-key", "sts-api-key")
        assert managed.helm_values == (
            ("stackstate.manageOwnSecrets", "true"),
            ("stackstate.customSecretName", f"{release}-rotated-api-key"),
            ("stackstate.customApiKeySecretKey", "sts-api-key"),
        )
        (consumer,) = managed.effective_consumers
        assert consumer.legacy_secrets == [chart_secret]

    def test_otel_collector_defaults(self) -> None:
        """Secret open-telemetry-collector/API_KEY (the user's, as the SUSE docs set it up);
        the collector is discovered; no chart value to set and nothing to adopt from."""
        managed = key({"type": "otel-collector", "namespace": "open-telemetry"})
        (target,) = managed.effective_targets
        assert (target.name, target.key) == ("open-telemetry-collector", "API_KEY")
        (consumer,) = managed.effective_consumers
        assert consumer.discover is True
        assert consumer.legacy_secrets == []
        assert managed.helm_values == ()
        assert managed.helm_hint is None
        assert managed.adopt_source is None

    def test_linux_agent(self) -> None:
        """The agent YAML field api_key and systemctl restart stackstate-agent."""
        managed = key({"type": "linux-agent"})
        (target,) = managed.effective_targets
        assert (target.type, str(target.path), target.format, target.field) == (
            "file",
            "/etc/stackstate-agent/stackstate.yaml",
            "yaml",
            "api_key",
        )
        (command,) = managed.effective_consumers
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
        assert [(t.type, getattr(t, "name", None)) for t in managed.effective_targets] == [
            ("kubernetes-secret", "custom"),
            ("file", None),
        ]
        assert workloads(managed) == [("Deployment", "only-one")]
        assert {c.action for c in managed.effective_consumers} == {"wait"}


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
      - {type: kubernetes-secret, namespace: obs, name: sts-rotated-api-key, key: STS_API_KEY}
"""
        )
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        assert "keys[1].targets[0]" in str(info.value)
        assert "keys[0].preset" in str(info.value)


class TestExpandedOnce:
    """A preset is expanded when its managed key is validated; every reader shares the result."""

    def test_every_read_returns_the_same_expansion(self) -> None:
        """effective_targets and effective_consumers are stored on the key, not rebuilt."""
        managed = key({"type": "suse-observability-agent", "release": "sts", "namespace": "obs"})
        assert managed.effective_targets is managed.effective_targets
        assert managed.effective_consumers is managed.effective_consumers

    def test_a_key_without_preset_has_only_its_own_targets_and_consumers(self) -> None:
        """No preset: the key's own lists, nothing to adopt from and no Helm values."""
        managed = ManagedKey.model_validate(
            {
                "name": "vm",
                "kind": "service-token",
                "roles": ["r"],
                "targets": [{"type": "file", "path": "/tmp/key"}],
                "consumers": [{"type": "command", "command": ["true"]}],
            }
        )
        assert managed.effective_targets == tuple(managed.targets)
        assert managed.effective_consumers == tuple(managed.consumers)
        assert (managed.adopt_source, managed.helm_values, managed.helm_hint) == (None, (), None)

    def test_a_key_built_without_validation_is_expanded_on_first_read(self) -> None:
        """model_construct skips validators; the first read expands the preset then."""
        validated = key({"type": "linux-agent"})
        constructed = ManagedKey.model_construct(**dict(validated))
        assert constructed.effective_targets == validated.effective_targets
        assert constructed.effective_consumers == validated.effective_consumers
